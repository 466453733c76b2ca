package gemm

import (
	"fmt"
	"testing"

	"github.com/viterin/vek/vek32"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// benchShapes are the products of the models shrink trains: LeNet-300-100
// at batch 128 (forward, weight gradients, input gradients), inference at
// batch 1000 and 1, and LeNet-5's im2col convolutions as gorgonia runs
// them (patches·filtersᵀ, then the two gradients) for a batch of 128 and
// for one image (28×28 → 24×24 with 6 5×5 filters; 12×12×6 → 8×8 with 16).
var benchShapes = []struct {
	name    string
	tA, tB  bool
	m, n, k int
}{
	{"fc1_fwd_128x300x784", false, false, 128, 300, 784},
	{"fc1_fwd_128x300x784_NT", false, true, 128, 300, 784}, // W stored out×in (model/ops.go)
	{"fc2_fwd_128x100x300", false, false, 128, 100, 300},
	{"fc3_fwd_128x10x100", false, false, 128, 10, 100},
	{"fc1_dW_784x300x128_TN", true, false, 784, 300, 128},
	{"fc1_dWt_300x784x128_TN", true, false, 300, 784, 128},
	{"fc2_dX_128x300x100_NT", false, true, 128, 300, 100},
	{"fc1_dX_128x784x300", false, false, 128, 784, 300}, // model/ops.go's dX
	{"infer_1000x300x784", false, false, 1000, 300, 784},
	{"infer_1x300x784", false, false, 1, 300, 784},
	{"conv1_fwd_73728x6x25_NT", false, true, 576 * 128, 6, 25},
	{"conv1_dX_73728x25x6", false, false, 576 * 128, 25, 6},
	{"conv1_dW_6x25x73728_TN", true, false, 6, 25, 576 * 128},
	{"conv2_fwd_8192x16x150_NT", false, true, 64 * 128, 16, 150},
	{"conv2_dX_8192x150x16", false, false, 64 * 128, 150, 16},
	{"conv2_dW_16x150x8192_TN", true, false, 16, 150, 64 * 128},
	{"conv1_1img_576x6x25_NT", false, true, 576, 6, 25},
	{"conv2_1img_64x16x150_NT", false, true, 64, 16, 150},
}

// BenchmarkSgemm compares, per shape, the asm kernels (best available and
// AVX2) on 1 and 2 threads, the pure-Go fallback, gonum's Sgemm (which
// parallelises on its own up to GOMAXPROCS), and for untransposed shapes
// viterin/vek's MatMul (SIMD dot products, one thread).
func BenchmarkSgemm(b *testing.B) {
	type variant struct {
		name    string
		impl    string
		threads int
	}
	var variants []variant
	for _, im := range asmImpls() {
		variants = append(variants, variant{im.name + "-t1", im.name, 1}, variant{im.name + "-t2", im.name, 2})
	}
	variants = append(variants, variant{"purego-t1", "purego", 1}, variant{"gonum", "gonum", 0}, variant{"vek", "vek", 0})

	for _, s := range benchShapes {
		tc := gemmCase{tA: s.tA, tB: s.tB, m: s.m, n: s.n, k: s.k, alpha: 1, seed: 1}
		a, lda, bb, ldb, c, ldc := tc.operands()
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		for _, v := range variants {
			b.Run(fmt.Sprintf("%s/%s", s.name, v.name), func(b *testing.B) {
				run := func() { Sgemm(s.tA, s.tB, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, ldc) }
				switch v.impl {
				case "vek":
					if s.tA || s.tB {
						b.Skip("vek multiplies row-major matrices without transposes")
					}
					run = func() { vek32.MatMul_Into(c[:s.m*s.n], a[:s.m*s.k], bb[:s.k*s.n], s.k) }
				case "gonum":
					tA, tB := blas.NoTrans, blas.NoTrans
					if s.tA {
						tA = blas.Trans
					}
					if s.tB {
						tB = blas.Trans
					}
					run = func() { gonum.Implementation{}.Sgemm(tA, tB, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, ldc) }
				default:
					prev := useImpl(v.impl)
					defer useImpl(prev)
					prevT := Threads()
					SetThreads(v.threads)
					defer SetThreads(prevT)
				}
				run()
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					run()
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkThreshold times cubes around parMinWork with 1 and 2 threads,
// with the split forced, to see where a second goroutine starts to pay.
func BenchmarkThreshold(b *testing.B) {
	for _, s := range []int{64, 80, 101, 128, 161, 203, 256} {
		tc := gemmCase{m: s, n: s, k: s, alpha: 1, seed: 1}
		a, lda, bb, ldb, c, ldc := tc.operands()
		flops := 2 * float64(s*s*s)
		for _, t := range []int{1, 2} {
			b.Run(fmt.Sprintf("%d^3/t%d", s, t), func(b *testing.B) {
				prev, prevMin := Threads(), parMinWork
				SetThreads(t)
				parMinWork = 0
				defer func() { SetThreads(prev); parMinWork = prevMin }()
				for range b.N {
					Sgemm(false, false, s, s, s, 1, a, lda, bb, ldb, 0, c, ldc)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
