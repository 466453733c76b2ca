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
// gives the bits of the path it replaces, on one thread and on two: the
// tall layout's (gemm.Taps) for stride 1, the chunked im2col product's for
// larger strides. Pruned ResNet widths, channel counts whose taps or
// patches gemm cuts into blocks (37 and more, 32 at stride 2), odd sizes
// and batches that cut chunks unevenly.
func TestPlanarMatchesTall(t *testing.T) {
	if planar.Impl() != "avx512" || gemm.Impl() == "purego" {
		t.Skip("planar runs only on its AVX-512 kernels with gemm's FMA kernels")
	}
	// SHRINK_PLANAR=off only keeps networks off planar: the comparison
	// (and planarFits' choice of chains) must run under it too.
	defer func(off bool) { planarOff = off }(planarOff)
	planarOff = false
	cases := []struct{ b, c, h, w, o, k, s int }{
		{1, 1, 28, 28, 11, 3, 1},
		{3, 11, 28, 28, 12, 3, 1},
		{5, 25, 14, 14, 23, 3, 1},
		{7, 49, 7, 7, 42, 3, 1},
		{2, 64, 7, 7, 64, 3, 1},
		{17, 37, 7, 7, 45, 3, 1},
		{2, 3, 5, 9, 7, 5, 1},
		{4, 6, 3, 4, 2, 1, 1},
		{3, 11, 28, 28, 19, 3, 2},
		{5, 25, 14, 14, 49, 3, 2},
		{3, 32, 14, 14, 64, 3, 2},
		{5, 25, 14, 14, 42, 1, 2},
		{9, 16, 28, 28, 32, 1, 2},
		{2, 3, 7, 9, 5, 3, 2},
		{3, 2, 8, 7, 3, 5, 3},
		{2, 57, 6, 6, 3, 3, 2},
		// One channel, position and output; one output over a row; a tap's
		// channels past gemm's k block (one tap per block); 7x7 kernels.
		{1, 1, 1, 1, 1, 3, 1},
		{2, 3, 1, 17, 1, 3, 1},
		{1, 300, 5, 5, 3, 3, 1},
		{2, 300, 6, 5, 3, 3, 2},
		{1, 2, 17, 15, 2, 7, 1},
	}
	// And 30 seeded random ones (up to 70 channels: several blocks).
	rng := rand.New(rand.NewPCG(9, 10))
	for len(cases) < 50 {
		c := struct{ b, c, h, w, o, k, s int }{1 + rng.IntN(9), 1 + rng.IntN(70), 1 + rng.IntN(16), 1 + rng.IntN(16),
			2 + rng.IntN(40), 1 + 2*rng.IntN(3), 1 + rng.IntN(2)}
		if c.s == 2 && (c.h+1)/2*((c.w+1)/2) < 2 {
			continue // one output position: a matrix-vector product, not planar's
		}
		cases = append(cases, c)
	}
	defer gemm.SetThreads(gemm.Threads())
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			p := convParams{stride: Square(tc.s), padding: Square(tc.k / 2), dilation: Square(1), groups: 1}
			d := p.geometry(tensor.Shape{tc.b, tc.c, tc.h, tc.w}, tensor.Shape{tc.o, tc.c, tc.k, tc.k})
			order, ok := planarFits(d)
			if !ok || d.tapped() != (tc.s == 1) {
				t.Fatalf("%+v does not run on planar", d)
			}
			x, w := make([]float32, tc.b*tc.c*tc.h*tc.w), make([]float32, tc.o*tc.c*tc.k*tc.k)
			for j := range x {
				x[j] = float32(rng.NormFloat64())
			}
			for j := range w {
				w[j] = float32(rng.NormFloat64())
			}
			want := oldPathForward(d, x, w)
			for _, threads := range []int{1, 2} {
				gemm.SetThreads(threads)
				got := make([]float32, len(want))
				var pl planarForward
				pl.run(d, order, x, w, got, nil)
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
						t.Fatalf("%d threads: y[%d] = %v (%08x), the tall layout gives %v (%08x)", threads, j, got[j], math.Float32bits(got[j]), want[j], math.Float32bits(want[j]))
					}
				}
			}
		})
	}
}

// TestPlanarMatchesTallNaN: with NaNs in x (random payloads) planar gives
// the old paths' bits too, payloads included, in one tap block and in
// several (where each later block's sum is added to the stored one).
func TestPlanarMatchesTallNaN(t *testing.T) {
	if planar.Impl() != "avx512" || gemm.Impl() == "purego" {
		t.Skip("planar runs only on its AVX-512 kernels with gemm's FMA kernels")
	}
	defer func(off bool) { planarOff = off }(planarOff)
	planarOff = false
	for i, tc := range []struct{ b, c, h, w, o, k, s int }{
		{2, 20, 7, 7, 5, 3, 1},
		{1, 20, 20, 20, 5, 3, 1},
		{2, 70, 7, 7, 5, 3, 1},
		{1, 70, 20, 20, 9, 3, 1},
		{2, 20, 14, 14, 5, 3, 2},
		{2, 70, 14, 14, 5, 3, 2},
	} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 12))
			p := convParams{stride: Square(tc.s), padding: Square(tc.k / 2), dilation: Square(1), groups: 1}
			d := p.geometry(tensor.Shape{tc.b, tc.c, tc.h, tc.w}, tensor.Shape{tc.o, tc.c, tc.k, tc.k})
			order, ok := planarFits(d)
			if !ok {
				t.Fatalf("%+v does not run on planar", d)
			}
			x, w := make([]float32, tc.b*tc.c*tc.h*tc.w), make([]float32, tc.o*tc.c*tc.k*tc.k)
			for j := range x {
				x[j] = float32(rng.NormFloat64())
				if rng.IntN(50) == 0 {
					x[j] = math.Float32frombits(0x7fc00000 | uint32(rng.IntN(1<<22)))
				}
			}
			for j := range w {
				w[j] = float32(rng.NormFloat64())
			}
			want := oldPathForward(d, x, w)
			got := make([]float32, len(want))
			var pl planarForward
			pl.run(d, order, x, w, got, nil)
			for j := range got {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
					t.Fatalf("y[%d] = %08x, the old path gives %08x", j, math.Float32bits(got[j]), math.Float32bits(want[j]))
				}
			}
		})
	}
}

// BenchmarkPlanarVsTall times ResNet-20's convolutions at batch 256 on
// one thread, dense and as recipes/resnet-fashion-compress.yaml's prune
// stage left them, on the path planar replaces ("tall": the tall layout
// for stride 1, the chunked im2col product for stride 2) and on package
// planar (the convolution alone, no epilogue), in useful GFLOP/s: the
// table in docs/PERFORMANCE.md that planarFits' choice rests on.
func BenchmarkPlanarVsTall(b *testing.B) {
	shapes := []struct{ c, hw, o, k, s int }{
		{1, 28, 16, 3, 1}, {16, 28, 16, 3, 1}, {32, 14, 32, 3, 1}, {64, 7, 64, 3, 1},
		{16, 28, 32, 3, 2}, {32, 14, 64, 3, 2}, {16, 28, 32, 1, 2}, {32, 14, 64, 1, 2},
		{1, 28, 11, 3, 1}, {11, 28, 12, 3, 1}, {12, 28, 11, 3, 1}, {11, 28, 10, 3, 1},
		{19, 14, 25, 3, 1}, {25, 14, 23, 3, 1}, {23, 14, 25, 3, 1}, {49, 7, 42, 3, 1}, {42, 7, 45, 3, 1}, {37, 7, 42, 3, 1},
		{11, 28, 19, 3, 2}, {25, 14, 49, 3, 2}, {11, 28, 25, 1, 2}, {25, 14, 42, 1, 2},
	}
	defer gemm.SetThreads(gemm.Threads())
	gemm.SetThreads(1)
	defer func(off bool) { planarOff = off }(planarOff)
	planarOff = false // planarFits' chains for the planar runs
	for _, s := range shapes {
		p := convParams{stride: Square(s.s), padding: Square(s.k / 2), dilation: Square(1), groups: 1}
		d := p.geometry(tensor.Shape{256, s.c, s.hw, s.hw}, tensor.Shape{s.o, s.c, s.k, s.k})
		order, _ := planarFits(d)
		rng := rand.New(rand.NewPCG(1, 2))
		x, w := make([]float32, d.B*d.C*d.H*d.W), make([]float32, d.O*d.C*s.k*s.k)
		for j := range x {
			x[j] = float32(rng.NormFloat64())
		}
		for j := range w {
			w[j] = float32(rng.NormFloat64())
		}
		y := make([]float32, d.B*d.O*d.P)
		flops := 2 * float64(d.B*d.O*d.CKK*d.P)
		for _, path := range []string{"tall", "planar"} {
			b.Run(fmt.Sprintf("C%d_%dx%d_O%d_k%ds%d/%s", s.c, s.hw, s.hw, s.o, s.k, s.s, path), func(b *testing.B) {
				tall := tallForward{fixedW: true}
				var chunked convForward
				var pl planarForward
				for i := 0; i <= b.N; i++ {
					if i == 1 {
						b.ResetTimer()
					}
					switch {
					case path == "planar":
						pl.run(d, order, x, w, y, nil)
					case d.tapped():
						tall.run(d, x, w, y, false)
					default:
						chunked.run(d, x, w, y)
					}
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// oldPathForward is the convolution as it ran before planar: the tall
// layout for a tapped one, chunked im2col products otherwise.
func oldPathForward(d convDims, x, w []float32) []float32 {
	y := make([]float32, d.B*d.O*d.P)
	if d.tapped() {
		var tall tallForward
		tall.run(d, x, w, y, false)
	} else {
		var chunked convForward
		chunked.run(d, x, w, y)
	}
	return y
}
