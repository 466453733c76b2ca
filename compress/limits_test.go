package compress

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

// TestRatioLimit: what a file may decode to is bounded by its own size, so a
// few bytes cannot claim gigabytes that MaxBytes alone would allow: the audit's
// 34-byte file holding a [536869888] F32 tensor of zeros (2.1 GB), and a file
// whose body claims far more than it could hold. Both fail before allocating.
func TestRatioLimit(t *testing.T) {
	codecs()
	zeros := []byte{structGaps, 1, 0, valuesF32} // gaps of width 1, no codes: every element background
	huge := storedFile(body(sec("x", "F32", []int{536869888}, encFloat, zeros)))

	claim := append(slices.Clone(Magic), Version, 0)
	claim = binary.AppendUvarint(claim, 1<<30) // a 1 GiB body
	claim = binary.AppendUvarint(claim, 1)
	claim = append(claim, blockZstd)
	claim = binary.AppendUvarint(claim, 1<<30)
	claim = binary.AppendUvarint(claim, 4)
	claim = append(claim, 0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0)

	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"a 2 GB tensor of zeros", huge, "needs more than the"},
		{"a 1 GiB body", claim, "the body claims 1073741824 bytes, more than the 67108864 allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, _, err = DecodeInfo(tc.file, DefaultLimits) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%d-byte file: got %v, want %q", len(tc.file), err, tc.want)
			}
			if n > 1<<20 {
				t.Errorf("refusing a %d-byte file allocated %d bytes", len(tc.file), n)
			}
		})
	}
	// The same tensor decodes when the limits allow it (the file is valid).
	if _, _, err := DecodeInfo(storedFile(body(sec("x", "F32", []int{1000}, encFloat, zeros))), DefaultLimits); err != nil {
		t.Fatalf("a small tensor of zeros: %v", err)
	}
}

// TestBudget: the ratio bound, its floor and MaxBytes combine as documented.
func TestBudget(t *testing.T) {
	l := Limits{MaxBytes: 1 << 31, Ratio: 4096, Floor: 64 << 20}
	for _, tc := range []struct{ n, want int }{
		{34, 64 << 20},
		{1 << 16, 256 << 20},
		{1 << 20, 1 << 31},
	} {
		if got := l.budget(tc.n); got != tc.want {
			t.Errorf("budget(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	if got := (Limits{MaxBytes: 5}).budget(1 << 30); got != 5 {
		t.Errorf("without a ratio: %d", got)
	}
}
