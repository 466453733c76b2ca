package compress

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
)

// fuzzLimits keep the fuzzer's allocations small and its bound meaningful.
var fuzzLimits = Limits{MaxBytes: 1 << 20}

// allocBound is what decoding n bytes under fuzzLimits may allocate: the
// charged budget a few times over (the body, tensors, integers and the
// checkpoint's own copies), linear slack for the input, and zstd's tables.
func allocBound(n int) uint64 { return 4*uint64(fuzzLimits.MaxBytes) + 64*uint64(n) + 4<<20 }

func allocated(fn func()) uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	fn()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

// seeds are the golden compressed files and every testdata checkpoint,
// compressed, with a few truncations.
func seeds(tb testing.TB) [][]byte {
	var out [][]byte
	golden, _ := filepath.Glob(filepath.Join(goldenDir, "*.shkz"))
	for _, p := range golden {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	sources, _ := filepath.Glob("../testdata/*/*.safetensors")
	for _, p := range sources {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		f, err := checkpoint.Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			continue
		}
		enc, err := Encode(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, enc, enc[:len(enc)/2], enc[:len(enc)-1])
	}
	if len(out) == 0 {
		tb.Fatal("no seeds in testdata")
	}
	return out
}

// FuzzDecode: decoding never panics, allocates within allocBound, fails with
// "compress: ..." errors, and whatever it accepts is a valid checkpoint that
// encodes and decodes back to itself.
func FuzzDecode(f *testing.F) {
	codecs() // the shared zstd tables are built once, outside the measurement
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecode(t, b) })
}

// FuzzBody mutates the decoded body of valid compressed files, then wraps it
// in a stored block with a correct checksum: a mutated file almost never
// passes its checksum, so FuzzDecode rarely reaches the section decoders
// behind it; these mutations all do. The same properties hold, and under a
// ratio limit the allocations stay within what the file's size allows.
func FuzzBody(f *testing.F) {
	codecs()
	for _, s := range seeds(f) {
		if b, err := readBlocks(s[len(Magic)+2:], fuzzLimits.MaxBytes); err == nil {
			f.Add(b)
		}
	}
	ratio := Limits{MaxBytes: fuzzLimits.MaxBytes, Ratio: 64, Floor: 4 << 10}
	f.Fuzz(func(t *testing.T, body []byte) {
		file := storedFile(body)
		checkDecode(t, file)
		budget := uint64(ratio.budget(len(file)))
		if n := allocated(func() { DecodeInfo(file, ratio) }); n > 4*budget+64*uint64(len(file))+4<<20 {
			t.Fatalf("decoding %d bytes under a ratio limit of %d allocated %d", len(file), budget, n)
		}
	})
}

func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	var file *checkpoint.File
	var err error
	if n := allocated(func() { file, _, err = DecodeInfo(b, fuzzLimits) }); n > allocBound(len(b)) {
		t.Fatalf("decoding %d bytes allocated %d", len(b), n)
	}
	if err != nil {
		if !strings.HasPrefix(err.Error(), "compress: ") {
			t.Fatalf("error without prefix: %v", err)
		}
		return
	}
	want, err := checkpoint.Marshal(file)
	if err != nil {
		t.Fatalf("accepted a file that is not a valid checkpoint: %v", err)
	}
	again, err := Encode(file)
	if err != nil {
		t.Fatalf("accepted file does not encode: %v", err)
	}
	back, err := Decode(again)
	if err != nil {
		t.Fatalf("re-encoded file does not decode: %v", err)
	}
	if got, _ := checkpoint.Marshal(back); !bytes.Equal(got, want) {
		t.Fatalf("re-encoded file differs:\n%s", describeDiff(file, back))
	}
}
