package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/planar"
)

// TestPlanarMatchesTall checks that a fused convolution on package planar
// gives the tall layout's bits (gemm.Taps), on one thread and on two:
// pruned ResNet widths, channel counts whose taps gemm.Taps cuts into
// blocks (37 and more), odd sizes and batches that cut chunks unevenly.
func TestPlanarMatchesTall(t *testing.T) {
	if planar.Impl() != "avx512" || gemm.Impl() == "purego" {
		t.Skip("planar runs only on its AVX-512 kernels with gemm's FMA kernels")
	}
	cases := []struct{ b, c, h, w, o, k int }{
		{1, 1, 28, 28, 11, 3},
		{3, 11, 28, 28, 12, 3},
		{5, 25, 14, 14, 23, 3},
		{7, 49, 7, 7, 42, 3},
		{2, 64, 7, 7, 64, 3},
		{17, 37, 7, 7, 45, 3},
		{2, 3, 5, 9, 7, 5},
		{4, 6, 3, 4, 2, 1},
	}
	defer gemm.SetThreads(gemm.Threads())
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			p := convParams{stride: Square(1), padding: Square(tc.k / 2), dilation: Square(1), groups: 1}
			d := p.geometry(tensor.Shape{tc.b, tc.c, tc.h, tc.w}, tensor.Shape{tc.o, tc.c, tc.k, tc.k})
			if !d.tapped() || !planarFits(d) {
				t.Fatalf("%+v does not run on planar", d)
			}
			x, w := make([]float32, tc.b*tc.c*tc.h*tc.w), make([]float32, tc.o*tc.c*tc.k*tc.k)
			for j := range x {
				x[j] = float32(rng.NormFloat64())
			}
			for j := range w {
				w[j] = float32(rng.NormFloat64())
			}
			want := make([]float32, tc.b*tc.o*tc.h*tc.w)
			var tall tallForward
			tall.run(d, x, w, want, false)
			for _, threads := range []int{1, 2} {
				gemm.SetThreads(threads)
				got := make([]float32, len(want))
				var pl planarForward
				pl.run(d, x, w, got, nil)
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
						t.Fatalf("%d threads: y[%d] = %v (%08x), the tall layout gives %v (%08x)", threads, j, got[j], math.Float32bits(got[j]), want[j], math.Float32bits(want[j]))
					}
				}
			}
		})
	}
}

// BenchmarkPlanarVsTall times ResNet-20's stride-1 convolutions at batch
// 256 on one thread, dense and as recipes/resnet-fashion-compress.yaml's
// prune stage left them, on the tall layout and on package planar (the
// convolution alone, no epilogue), in useful GFLOP/s: the table in
// docs/PERFORMANCE.md that planarFits' choice rests on.
func BenchmarkPlanarVsTall(b *testing.B) {
	shapes := []struct{ c, hw, o int }{
		{1, 28, 16}, {16, 28, 16}, {32, 14, 32}, {64, 7, 64},
		{1, 28, 11}, {11, 28, 12}, {12, 28, 11}, {11, 28, 10},
		{19, 14, 25}, {25, 14, 23}, {23, 14, 25}, {49, 7, 42}, {42, 7, 45}, {37, 7, 42},
	}
	defer gemm.SetThreads(gemm.Threads())
	gemm.SetThreads(1)
	for _, s := range shapes {
		p := convParams{stride: Square(1), padding: Square(1), dilation: Square(1), groups: 1}
		d := p.geometry(tensor.Shape{256, s.c, s.hw, s.hw}, tensor.Shape{s.o, s.c, 3, 3})
		rng := rand.New(rand.NewPCG(1, 2))
		x, w := make([]float32, d.B*d.C*d.H*d.W), make([]float32, d.O*d.C*9)
		for j := range x {
			x[j] = float32(rng.NormFloat64())
		}
		for j := range w {
			w[j] = float32(rng.NormFloat64())
		}
		y := make([]float32, d.B*d.O*d.P)
		flops := 2 * float64(d.B*d.O*d.C*9*d.P)
		for _, path := range []string{"tall", "planar"} {
			b.Run(fmt.Sprintf("C%d_%dx%d_O%d/%s", s.c, s.hw, s.hw, s.o, path), func(b *testing.B) {
				tall := tallForward{fixedW: true}
				var pl planarForward
				for i := 0; i <= b.N; i++ {
					if i == 1 {
						b.ResetTimer()
					}
					if path == "tall" {
						tall.run(d, x, w, y, false)
					} else {
						pl.run(d, x, w, y, nil)
					}
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
