package nf4

import (
	"fmt"
	"testing"
)

// BenchmarkDequantize is the per-forward-pass cost of QLoRA's frozen base for LeNet's first
// layer (784x300) and a 128x512 one, with and without double quantization. naive is the
// per-element formula (Code[code] * absmax) for comparison.
func BenchmarkDequantize(b *testing.B) {
	for _, s := range [][2]int{{300, 784}, {128, 512}} {
		n := s[0] * s[1]
		w := randomWeight(9, n)
		for _, dq := range []bool{false, true} {
			q, err := Quantize(w, s[:], DefaultBlocksize, dq)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]float32, n)
			b.Run(fmt.Sprintf("%dx%d/dq=%v", s[1], s[0], dq), func(b *testing.B) {
				b.SetBytes(int64(4 * n)) // float32s written
				for b.Loop() {
					if err := q.Dequantize(dst); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%dx%d/dq=%v/naive", s[1], s[0], dq), func(b *testing.B) {
				b.SetBytes(int64(4 * n))
				for b.Loop() {
					naiveDequantize(q, dst)
				}
			})
		}
	}
}

// naiveDequantize is dequantize_4bit element by element.
func naiveDequantize(q *Weight, dst []float32) {
	for i := range dst {
		p := q.Packed[i/2]
		c := p >> 4
		if i%2 == 1 {
			c = p & 15
		}
		dst[i] = Code[c] * q.absmaxOf(i/q.Blocksize)
	}
}

func BenchmarkQuantize(b *testing.B) {
	w := randomWeight(10, 300*784)
	for _, dq := range []bool{false, true} {
		b.Run(fmt.Sprintf("784x300/dq=%v", dq), func(b *testing.B) {
			b.SetBytes(int64(4 * len(w)))
			for b.Loop() {
				if _, err := Quantize(w, []int{300, 784}, DefaultBlocksize, dq); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
