package qgemm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shrink-ml/shrink/internal/gemm"
)

// benchShapes: LeNet-300-100's layers at batch 1 and 256, an LSTM with
// 128 hidden units (gates 4·128 = 512) for one step at batch 1 and 256
// (input 28: an MNIST row; and the hidden state), and LeNet-5's second
// convolution as im2col patches × filtersᵀ for 128 images.
var benchShapes = []struct {
	name    string
	m, n, k int
}{
	{"fc1_1x300x784", 1, 300, 784},
	{"fc2_1x100x300", 1, 100, 300},
	{"fc3_1x10x100", 1, 10, 100},
	{"fc1_256x300x784", 256, 300, 784},
	{"fc2_256x100x300", 256, 100, 300},
	{"fc3_256x10x100", 256, 10, 100},
	{"lstm_x_1x512x28", 1, 512, 28},
	{"lstm_h_1x512x128", 1, 512, 128},
	{"lstm_x_256x512x28", 256, 512, 28},
	{"lstm_h_256x512x128", 256, 512, 128},
	{"conv2_8192x16x150", 8192, 16, 150},
}

// BenchmarkMatMul times the int8 product on every path and range next to
// internal/gemm's float32 A·Bᵀ (its best kernels, one thread) at the same
// shape, interleaved per shape. GOP/s counts 2mnk operations.
func BenchmarkMatMul(b *testing.B) {
	for _, s := range benchShapes {
		ops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		rng := rand.New(rand.NewPCG(1, 2))
		a := make([]uint8, s.m*s.k)
		for i := range a {
			a[i] = uint8(rng.UintN(128))
		}
		w := make([]int8, s.n*s.k)
		for i := range w {
			w[i] = int8(rng.IntN(256) - 128)
		}
		p := Pack(w, s.n, s.k)
		c := make([]int32, s.m*s.n)
		af, wf, cf := make([]float32, len(a)), make([]float32, len(w)), make([]float32, len(c))
		for i := range a {
			af[i] = float32(a[i])
		}
		for i := range w {
			wf[i] = float32(w[i])
		}
		b.Run(s.name+"/float32", func(b *testing.B) {
			prev := gemm.Threads()
			gemm.SetThreads(1)
			defer gemm.SetThreads(prev)
			b.ReportAllocs()
			for range b.N {
				gemm.Sgemm(false, true, s.m, s.n, s.k, 1, af, s.k, wf, s.k, 0, cf, s.n)
			}
			b.ReportMetric(ops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
		})
		for _, name := range impls() {
			for _, r := range []Range{Full, Reduced} {
				if name == "purego" && (r == Reduced || s.m*s.n*s.k > 1<<24) {
					continue
				}
				b.Run(fmt.Sprintf("%s/%s-%d", s.name, name, r), func(b *testing.B) {
					withImpl(b, name, func() {
						b.ReportAllocs()
						for range b.N {
							MatMul(s.m, a, s.k, r, p, c, s.n)
						}
						b.ReportMetric(ops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
					})
				})
			}
		}
	}
}

// BenchmarkLayer times a whole dynamically quantized linear layer, float
// activations in and out: Quantize (reduce_range, as PyTorch), MatMul and
// Dequantize with a per-channel scale and a bias, against the float32
// product alone (no bias) at the same shape.
func BenchmarkLayer(b *testing.B) {
	for _, s := range benchShapes {
		if s.name[:4] == "conv" {
			continue
		}
		rng := rand.New(rand.NewPCG(1, 2))
		x := randFloats(rng, s.m*s.k)
		wf := randFloats(rng, s.n*s.k)
		w := make([]int8, len(wf))
		for i := range w {
			w[i] = int8(rng.IntN(256) - 128)
		}
		p := Pack(w, s.n, s.k)
		ws, bias := randFloats(rng, s.n), randFloats(rng, s.n)
		q := make([]uint8, s.m*s.k)
		acc := make([]int32, s.m*s.n)
		y := make([]float32, s.m*s.n)
		b.Run(s.name+"/float32", func(b *testing.B) {
			prev := gemm.Threads()
			gemm.SetThreads(1)
			defer gemm.SetThreads(prev)
			for range b.N {
				gemm.Sgemm(false, true, s.m, s.n, s.k, 1, x, s.k, wf, s.k, 0, y, s.n)
			}
		})
		b.Run(s.name+"/int8", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				ap := Quantize(s.m, s.k, x, s.k, Reduced, q, s.k)
				MatMul(s.m, q, s.k, Reduced, p, acc, s.n)
				Dequantize(s.m, acc, s.n, ap, p, ws, bias, y, s.n)
			}
		})
	}
}
