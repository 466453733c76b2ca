package sparse

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shrink-ml/shrink/internal/gemm"
)

// pruned returns an out×in weight matrix with the given fraction of
// nonzeros, at random positions (unstructured pruning).
func pruned(rng *rand.Rand, out, in int, density float64) []float32 {
	w := make([]float32, out*in)
	for i := range w {
		if rng.Float64() < density {
			w[i] = float32(rng.NormFloat64()) + 0.01
		}
	}
	return w
}

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func relu(v []float32) {
	for i, x := range v {
		v[i] = max(x, 0)
	}
}

// denseLayer is y = x·Wᵀ + b with internal/gemm on one thread, the dense
// path the model takes (bias added in Go, as model/ops.go does).
func denseLayer(batch, out, in int, x, w, b, y []float32) {
	gemm.Sgemm(false, true, batch, out, in, 1, x, in, w, in, 0, y, out)
	for r := 0; r < batch; r++ {
		row := y[r*out : r*out+out]
		for j := range row {
			row[j] += b[j]
		}
	}
}

// BenchmarkLeNet300 runs LeNet-300-100 (784-300-100-10, ReLU between) at
// 92% sparsity, every layer pruned at random to 8% of its weights, dense
// (internal/gemm, one thread) against sparse float32 and int8, at batch 1
// and 256. The target: sparse at least 3x faster at batch 1.
func BenchmarkLeNet300(b *testing.B) {
	prev := gemm.Threads()
	gemm.SetThreads(1)
	defer gemm.SetThreads(prev)
	dims := []int{784, 300, 100, 10}
	rng := rand.New(rand.NewPCG(1, 2))
	var ws, bs [][]float32
	var sp, sp8 []*Matrix
	for l := 0; l < 3; l++ {
		in, out := dims[l], dims[l+1]
		w := pruned(rng, out, in, 0.08)
		ws = append(ws, w)
		bs = append(bs, randVec(rng, out))
		sp = append(sp, New(w, out, in))
		q := make([]int8, len(w))
		scale := make([]float32, out)
		for r := range scale {
			scale[r] = 0.01
			for j := 0; j < in; j++ {
				q[r*in+j] = int8(max(-127, min(127, w[r*in+j]*100)))
			}
		}
		sp8 = append(sp8, NewInt8(q, scale, out, in))
	}
	for _, batch := range []int{1, 256} {
		x := randVec(rng, batch*784)
		acts := [][]float32{x, make([]float32, batch*300), make([]float32, batch*100), make([]float32, batch*10)}
		b.Run(fmt.Sprintf("batch%d/dense", batch), func(b *testing.B) {
			for range b.N {
				for l := 0; l < 3; l++ {
					denseLayer(batch, dims[l+1], dims[l], acts[l], ws[l], bs[l], acts[l+1])
					if l < 2 {
						relu(acts[l+1])
					}
				}
			}
		})
		for _, v := range []struct {
			name string
			m    []*Matrix
		}{{"sparse", sp}, {"sparse-int8", sp8}} {
			for _, name := range impls() {
				if name == "purego" && batch > 1 {
					continue
				}
				b.Run(fmt.Sprintf("batch%d/%s-%s", batch, v.name, name), func(b *testing.B) {
					withImpl(b, name, func() {
						b.ReportAllocs()
						for range b.N {
							for l := 0; l < 3; l++ {
								v.m[l].Mul(batch, acts[l], dims[l], bs[l], acts[l+1], dims[l+1])
								if l < 2 {
									relu(acts[l+1])
								}
							}
						}
					})
				})
			}
		}
	}
}

// BenchmarkDensity sweeps the density of LeNet-300-100's first two
// layers at batch 1, 16 and 256, sparse (float32 and int8) against dense
// internal/gemm on one thread (the product alone, no bias, on both
// sides). The crossovers it finds are worth.go's thresholds. Each case
// reports its time over dense's as "ratio" (below 1: sparse wins), dense
// having been timed just before.
func BenchmarkDensity(b *testing.B) {
	prev := gemm.Threads()
	gemm.SetThreads(1)
	defer gemm.SetThreads(prev)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range []struct{ out, in int }{{300, 784}, {100, 300}} {
		for _, batch := range []int{1, 16, 256} {
			x := randVec(rng, batch*s.in)
			y := make([]float32, batch*s.out)
			w := randVec(rng, s.out*s.in)
			var dense float64 // ns per product
			b.Run(fmt.Sprintf("%dx%d/b%d/dense", s.out, s.in, batch), func(b *testing.B) {
				for range b.N {
					gemm.Sgemm(false, true, batch, s.out, s.in, 1, x, s.in, w, s.in, 0, y, s.out)
				}
				dense = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
			for _, d := range []float64{0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7} {
				wp := pruned(rng, s.out, s.in, d)
				q := make([]int8, len(wp))
				for i, v := range wp {
					q[i] = int8(max(-127, min(127, v*40)))
					if v != 0 && q[i] == 0 {
						q[i] = 1
					}
				}
				for _, m := range []struct {
					kind string
					m    *Matrix
				}{{"f32", New(wp, s.out, s.in)}, {"i8", NewInt8(q, make([]float32, s.out), s.out, s.in)}} {
					b.Run(fmt.Sprintf("%dx%d/b%d/%s/d%.2f", s.out, s.in, batch, m.kind, d), func(b *testing.B) {
						for range b.N {
							m.m.Mul(batch, x, s.in, nil, y, s.out)
						}
						b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/dense, "ratio")
					})
				}
			}
		}
	}
}

// BenchmarkLayers times each LeNet-300-100 layer at 8% density, batch 1,
// with the format's iteration count (16-lane steps, padding included).
func BenchmarkLayers(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range []struct{ out, in int }{{300, 784}, {100, 300}, {10, 100}} {
		m := New(pruned(rng, s.out, s.in, 0.08), s.out, s.in)
		x := randVec(rng, s.in)
		y := make([]float32, s.out)
		b.Run(fmt.Sprintf("%dx%d", s.out, s.in), func(b *testing.B) {
			for range b.N {
				m.MulVec(x, nil, y)
			}
			b.ReportMetric(float64(m.f.iterations()), "iterations")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(m.f.iterations()), "ns/iteration")
		})
	}
}
