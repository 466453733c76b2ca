package checkpoint

import (
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// oneMB is a 1 MiB checkpoint: one F32 tensor of 262144 elements plus a bias.
func oneMB() *File {
	v := make([]float32, 512*512)
	for i := range v {
		v[i] = float32(math.Sin(float64(i)))
	}
	return &File{
		Metadata: map[string]string{"stage": "bench"},
		Tensors: []Tensor{
			F32("fc.weight", []int{512, 512}, v),
			F32("fc.bias", []int{512}, v[:512]),
		},
	}
}

func BenchmarkRead1MB(b *testing.B) {
	buf := mustMarshal(b, oneMB())
	r := bytes.NewReader(buf)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(r, int64(len(buf))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFloat32s1MB is Read plus decoding every tensor to []float32.
func BenchmarkReadFloat32s1MB(b *testing.B) {
	buf := mustMarshal(b, oneMB())
	r := bytes.NewReader(buf)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := Read(r, int64(len(buf)))
		if err != nil {
			b.Fatal(err)
		}
		for i := range f.Tensors {
			if _, err := f.Tensors[i].Float32s(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkReadFile1MB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.safetensors")
	if _, err := WriteFile(path, oneMB()); err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadFile(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFloat32s1MB(b *testing.B) {
	f := oneMB()
	w := &f.Tensors[0]
	b.SetBytes(int64(len(w.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Float32s(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode1MB(b *testing.B) {
	f := oneMB()
	size := len(mustMarshal(b, f))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if err := Encode(io.Discard, f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal1MB(b *testing.B) {
	f := oneMB()
	b.SetBytes(int64(len(mustMarshal(b, f))))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadHeader1000 parses a header of 1000 tensors (a mid-sized model's worth).
func BenchmarkReadHeader1000(b *testing.B) {
	f := &File{Metadata: map[string]string{"format": "pt"}}
	for i := range 1000 {
		f.Set(F32("layers."+string(rune('a'+i%26))+"."+string(rune('a'+i/26%26))+"."+string(rune('a'+i/676))+".weight", []int{2, 2}, []float32{1, 2, 3, 4}))
	}
	buf := mustMarshal(b, f)
	r := bytes.NewReader(buf)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(r, int64(len(buf))); err != nil {
			b.Fatal(err)
		}
	}
}
