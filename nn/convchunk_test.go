package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/op"
)

// convCase is a convolution of x [B, C, H, W] with w [O, C/groups, KH, KW].
type convCase struct {
	B, C, H, W, O, KH, KW int
	p                     convParams
}

func (c convCase) String() string {
	return fmt.Sprintf("x%dx%dx%d_w%dx%dx%d_s%v_p%v_d%v_g%d", c.C, c.H, c.W, c.O, c.KH, c.KW, c.p.stride, c.p.padding, c.p.dilation, c.p.groups)
}

// chunkedCases take every path: the transposed convolution for dx, col2im
// for strides and groups, dilation, rectangular kernels. Their batch size is
// set so the batch is cut into chunks, the last one of a single image (B is
// only given for the tall layout, whose chunks depend on it).
var chunkedCases = []convCase{
	{0, 16, 28, 28, 16, 3, 3, convParams{Square(1), Square(1), Square(1), 1}},
	{34, 32, 14, 14, 32, 3, 3, convParams{Square(1), Square(1), Square(1), 1}}, // stage 2: 3 images a chunk
	{49, 64, 7, 7, 64, 3, 3, convParams{Square(1), Square(1), Square(1), 1}},   // stage 3: 4 images a chunk
	{37, 6, 9, 11, 10, 5, 3, convParams{Square(1), Pair{2, 1}, Square(1), 1}},  // 5x3, padding 2 and 1  // ResNet stage 1: one image a chunk
	{0, 64, 7, 7, 64, 3, 3, convParams{Square(1), Square(1), Square(1), 1}},    // stage 3: 4 images a chunk, then 2
	{0, 12, 5, 6, 9, 3, 3, convParams{Square(1), Square(1), Square(1), 1}},     // narrow images, whole-plane transposes, Cin != Cout
	{0, 16, 28, 28, 32, 3, 3, convParams{Square(2), Square(1), Square(1), 1}},  // stage 2's entry
	{0, 16, 28, 28, 32, 1, 1, convParams{Square(2), Square(0), Square(1), 1}},  // its 1x1 shortcut
	{0, 1, 28, 28, 16, 3, 3, convParams{Square(1), Square(1), Square(1), 1}},   // the stem
	{0, 8, 30, 30, 8, 3, 3, convParams{Square(1), Square(2), Square(2), 2}},    // dilated, grouped
	{0, 6, 40, 33, 5, 5, 3, convParams{Square(1), Pair{2, 1}, Square(1), 1}},   // rectangular kernel
	{0, 4, 21, 21, 6, 3, 3, convParams{Pair{2, 1}, Pair{0, 2}, Pair{1, 2}, 1}}, // mixed strides and padding
	{0, 32, 20, 20, 32, 3, 3, convParams{Square(1), Square(3), Square(1), 1}},  // padding past the kernel's reach
	{0, 3, 11, 13, 4, 3, 5, convParams{Pair{1, 2}, Pair{1, 2}, Square(1), 1}},  // stride 2 along rows only (vec.Gather2)
	{0, 2, 9, 70, 3, 3, 3, convParams{Square(2), Square(2), Pair{1, 2}, 1}},    // stride 2, width dilated, over 32 outputs a row
}

// TestChunkedConvMatchesDirect checks the chunked forward, input and weight
// gradients against a direct float64 convolution, and that one and two
// threads give the same bits.
func TestChunkedConvMatchesDirect(t *testing.T) {
	for _, tc := range chunkedCases {
		t.Run(tc.String(), func(t *testing.T) {
			// Two full chunks and one image; on the tall layout, chunks of
			// one image, or of several when B is given.
			d := tc.p.geometry(tensor.Shape{1 << 20, tc.C, tc.H, tc.W}, tensor.Shape{tc.O, tc.C / tc.p.groups, tc.KH, tc.KW})
			if !d.tapped() {
				tc.B = 2*chunksOf(d).nb + 1
			} else if tc.B == 0 {
				tc.B = 3
			}
			rng := rand.New(rand.NewPCG(7, uint64(tc.B*tc.C)))
			x := randDense(rng, tc.B, tc.C, tc.H, tc.W)
			w := randDense(rng, tc.O, tc.C/tc.p.groups, tc.KH, tc.KW)
			d = tc.p.geometry(op.Dims(x), op.Dims(w))
			if d.plain() {
				t.Fatal("a plain convolution does not take the chunked path")
			}
			ch := chunksOf(d)
			if d.tapped() {
				ch = tallOf(d).ch
			}
			if ch.chunks < 3 || ch.nb*ch.chunks != tc.B+ch.nb-1 {
				t.Fatalf("batch %d is cut into %d chunks of %d, not several with one image in the last", tc.B, ch.chunks, ch.nb)
			}
			dy := randDense(rng, tc.B, tc.O, d.OH, d.OW)
			var runs [2][3][]float32
			for i, threads := range []int{1, 2} {
				gemm.SetThreads(threads)
				runs[i] = runChunked(t, tc.p, x, w, dy)
			}
			gemm.SetThreads(1)
			y, dx, dw := directConv(d, op.F32(x), op.F32(w), op.F32(dy))
			for k, want := range [][]float64{y, dx, dw} {
				what := []string{"y", "dx", "dw"}[k]
				closeTo64(t, what, runs[0][k], want, 1e-5)
				for i := range runs[0][k] {
					if math.Float32bits(runs[0][k][i]) != math.Float32bits(runs[1][k][i]) {
						t.Fatalf("%s[%d]: %v with one thread, %v with two", what, i, runs[0][k][i], runs[1][k][i])
					}
				}
			}
		})
	}
}

func runChunked(t *testing.T, p convParams, x, w, dy *tensor.Dense) [3][]float32 {
	t.Helper()
	fwd := &conv2dOp{Base: op.NewBase("conv"), convParams: p}
	dxOp := &convBackXOp{Base: op.NewBase("dx"), convParams: p}
	dwOp := &convBackWOp{Base: op.NewBase("dw"), convParams: p}
	var out [3][]float32
	for i, call := range []func() (G.Value, error){
		func() (G.Value, error) { return fwd.Do(x, w) },
		func() (G.Value, error) { return dxOp.Do(dy, x, w) },
		func() (G.Value, error) { return dwOp.Do(dy, x, w) },
	} {
		v, err := call()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = append([]float32(nil), op.F32(v)...)
	}
	return out
}

func randDense(rng *rand.Rand, shape ...int) *tensor.Dense {
	t := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
	for i, v := range t.Float32s() {
		_ = v
		t.Float32s()[i] = float32(rng.NormFloat64())
	}
	return t
}

// directConv is the convolution, its input gradient and its weight gradient
// for the output gradient dy, by definition, in float64.
func directConv(d convDims, x, w, dy []float32) (y, dx, dw []float64) {
	y = make([]float64, d.B*d.O*d.P)
	dx = make([]float64, len(x))
	dw = make([]float64, len(w))
	for b := 0; b < d.B; b++ {
		for o := 0; o < d.O; o++ {
			g := o / d.Og
			for oh := 0; oh < d.OH; oh++ {
				for ow := 0; ow < d.OW; ow++ {
					at := ((b*d.O+o)*d.OH+oh)*d.OW + ow
					var s float64
					for ci := 0; ci < d.Cg; ci++ {
						c := g*d.Cg + ci
						for ki := 0; ki < d.KH; ki++ {
							ih := oh*d.stride[0] - d.padding[0] + ki*d.dilation[0]
							for kj := 0; kj < d.KW; kj++ {
								iw := ow*d.stride[1] - d.padding[1] + kj*d.dilation[1]
								if ih < 0 || ih >= d.H || iw < 0 || iw >= d.W {
									continue
								}
								xi := ((b*d.C+c)*d.H+ih)*d.W + iw
								wi := ((o*d.Cg+ci)*d.KH+ki)*d.KW + kj
								s += float64(w[wi]) * float64(x[xi])
								dx[xi] += float64(w[wi]) * float64(dy[at])
								dw[wi] += float64(x[xi]) * float64(dy[at])
							}
						}
					}
					y[at] = s
				}
			}
		}
	}
	return y, dx, dw
}

// closeTo64 checks got against want within tol of want's largest magnitude.
func closeTo64(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var scale float64
	for _, v := range want {
		scale = max(scale, math.Abs(v))
	}
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); d > tol*scale || math.IsNaN(d) {
			t.Fatalf("%s[%d] = %v, want %v (largest |value| %v)", what, i, got[i], want[i], scale)
		}
	}
}
