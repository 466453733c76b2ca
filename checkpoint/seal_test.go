package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestSeal: a sealed file read back verifies; one changed anywhere after
// sealing (a weight's byte, a shape, a metadata value, a tensor gone) does not,
// nor does a file never sealed.
func TestSeal(t *testing.T) {
	build := func() *File {
		f := &File{Metadata: map[string]string{"epoch": "3"}, Tensors: []Tensor{
			F32("w", []int{2, 2}, []float32{1, 2, 3, 4}),
			I8("q", []int{3}, []int8{1, -2, 3}),
		}}
		Seal(f)
		return f
	}
	path := filepath.Join(t.TempDir(), "state.safetensors")
	if _, err := WriteFile(path, build()); err != nil {
		t.Fatal(err)
	}
	back, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSeal(back); err != nil {
		t.Fatalf("an unchanged file: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(f *File)
	}{
		{"a weight byte", func(f *File) { f.Tensors[0].Data[5] ^= 0x10 }},
		{"a shape", func(f *File) { f.Tensors[0].Shape = []int{4, 1} }},
		{"a metadata value", func(f *File) { f.Metadata["epoch"] = "4" }},
		{"a metadata key added", func(f *File) { f.Metadata["x"] = "" }},
		{"a tensor gone", func(f *File) { f.Tensors = f.Tensors[:1] }},
		{"a tensor renamed", func(f *File) { f.Tensors[0].Name = "p" }},
		{"never sealed", func(f *File) { delete(f.Metadata, SealKey) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := build()
			tc.change(f)
			if err := CheckSeal(f); !errors.Is(err, ErrSeal) {
				t.Fatalf("got %v, want ErrSeal", err)
			}
		})
	}
	// A byte flipped in the file itself, in the data buffer.
	b, _ := os.ReadFile(path)
	b[len(b)-2] ^= 0xff
	os.WriteFile(path, b, 0o644)
	back, err = ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSeal(back); !errors.Is(err, ErrSeal) {
		t.Fatalf("a flipped byte: got %v", err)
	}
}
