package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/op"
)

// refConvInt8 is the integer convolution by its definition: codes of x
// with the static parameters, zero padding standing for 0 (the zero
// point), Σ (q - zp)·w exactly, then rescaled as the op does.
func refConvInt8(x []float32, b, c, h, w int, wt Int8Weight, st Int8Static, stride, pad Pair) ([]float32, int, int) {
	o, kh, kw := wt.Shape[0], wt.Shape[2], wt.Shape[3]
	oh := outSize(h, kh, stride[0], pad[0], 1)
	ow := outSize(w, kw, stride[1], pad[1], 1)
	inv := 1 / st.Scale
	code := func(v float32) int64 {
		q := int64(math.RoundToEven(float64(v*inv))) + int64(st.ZeroPoint)
		return min(max(q, int64(st.QMin)), int64(st.QMax))
	}
	y := make([]float32, b*o*oh*ow)
	for n := 0; n < b; n++ {
		for oc := 0; oc < o; oc++ {
			mult := st.Scale * wt.Scale[min(oc, len(wt.Scale)-1)]
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					var s int64
					for ci := 0; ci < c; ci++ {
						for ki := 0; ki < kh; ki++ {
							for kj := 0; kj < kw; kj++ {
								ih, iw := i*stride[0]-pad[0]+ki, j*stride[1]-pad[1]+kj
								q := int64(st.ZeroPoint) // padding
								if ih >= 0 && ih < h && iw >= 0 && iw < w {
									q = code(x[((n*c+ci)*h+ih)*w+iw])
								}
								s += (q - int64(st.ZeroPoint)) * int64(wt.Q[((oc*c+ci)*kh+ki)*kw+kj])
							}
						}
					}
					y[((n*o+oc)*oh+i)*ow+j] = float32(float32(int32(s)) * mult)
				}
			}
		}
	}
	return y, oh, ow
}

// The integer convolution equals its definition bit for bit, on kernel
// sizes, strides, paddings and image sizes around the kernels' edges,
// batches cut into several chunks,
// for signed (qint8) and reduce_range (0..127) codes, per-tensor and
// per-channel weight scales.
func TestConvInt8MatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type geo struct {
		b, c, h, w, o, kh, kw, stride, pad int
	}
	cases := []geo{
		{1, 1, 1, 1, 1, 1, 1, 1, 0},
		{2, 3, 8, 8, 4, 3, 3, 1, 1},
		{3, 5, 7, 9, 17, 3, 3, 1, 1},
		{1, 16, 12, 12, 16, 3, 3, 2, 1},
		{2, 4, 9, 7, 33, 1, 1, 2, 0},
		{2, 6, 10, 10, 3, 5, 5, 1, 2},
		{1, 2, 6, 11, 5, 3, 1, 1, 0},
		{2, 7, 5, 5, 64, 3, 3, 1, 0},
		{1, 3, 13, 13, 8, 5, 5, 3, 2},
		{4, 1, 28, 28, 6, 5, 5, 1, 0},
		// more images than fit in one chunk, the last chunk short, at
		// pruned widths
		{7, 16, 28, 28, 12, 3, 3, 1, 1},
		{5, 11, 28, 28, 25, 3, 3, 2, 1},
		{3, 42, 7, 7, 45, 3, 3, 1, 1},
	}
	for _, g := range cases {
		for _, signed := range []bool{true, false} {
			for _, perChannel := range []bool{false, true} {
				for _, route := range int8Routes {
					name := fmt.Sprintf("%+v/signed=%v/perchannel=%v/%s", g, signed, perChannel, route.name)
					t.Run(name, func(t *testing.T) {
						defer UseInt8Taps(route.taps)()
						st := Int8Static{Scale: 0.03, ZeroPoint: 7, QMin: -128, QMax: 127}
						if !signed {
							st = Int8Static{Scale: 0.05, ZeroPoint: 60, QMin: 0, QMax: 127}
						}
						wt := Int8Weight{Shape: []int{g.o, g.c, g.kh, g.kw}, Rows: g.o, Cols: g.c * g.kh * g.kw, Q: make([]int8, g.o*g.c*g.kh*g.kw)}
						for i := range wt.Q {
							wt.Q[i] = int8(rng.IntN(255) - 127)
						}
						wt.Scale = []float32{0.01}
						if perChannel {
							wt.Scale = make([]float32, g.o)
							for i := range wt.Scale {
								wt.Scale[i] = 0.001 + rng.Float32()*0.02
							}
						}
						x := make([]float32, g.b*g.c*g.h*g.w)
						for i := range x {
							x[i] = float32(rng.NormFloat64() * 2) // some beyond the codes' range
						}
						p := convParams{stride: Square(g.stride), padding: Square(g.pad), dilation: Square(1), groups: 1}
						o := newConvInt8Op("conv.int8", p, wt, st)
						in := tensor.New(tensor.WithShape(g.b, g.c, g.h, g.w), tensor.WithBacking(x))
						if _, err := o.InferShape(tensor.Shape{g.b, g.c, g.h, g.w}); err != nil {
							t.Fatal(err)
						}
						for rep := 0; rep < 2; rep++ { // the second call reuses the scratch
							out, err := o.Do(in)
							if err != nil {
								t.Fatal(err)
							}
							want, oh, ow := refConvInt8(x, g.b, g.c, g.h, g.w, wt, st, p.stride, p.padding)
							if s := op.Dims(out); s[2] != oh || s[3] != ow {
								t.Fatalf("output %v, want %dx%d", s, oh, ow)
							}
							got := op.F32(out)
							for i := range want {
								if got[i] != want[i] {
									t.Fatalf("y[%d] = %g, want %g", i, got[i], want[i])
								}
							}
						}
					})
				}
			}
		}
	}
}
