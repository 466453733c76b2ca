package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/op"
)

// int8Routes are the two ways a stride-1 integer convolution runs; every
// integer convolution test runs both (the taps route on qgemm's Go
// kernels where the CPU has no VNNI).
var int8Routes = []struct {
	name string
	taps bool
}{{"columns", false}, {"taps", true}}

// The taps route gives the column route's bits with every epilogue a
// fused ResNet uses (bias, batch norm, residual add, ReLU, each alone and
// together), on pruned widths, odd sizes, 1×1 and 5×5 kernels and strides
// 1 to 3.
func TestConvInt8TapsMatchesColumns(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type geo struct{ b, c, h, w, o, k, pad, stride int }
	geos := []geo{
		{3, 11, 28, 28, 11, 3, 1, 1},
		{2, 25, 14, 14, 23, 3, 1, 1},
		{2, 42, 7, 7, 45, 3, 1, 1},
		{1, 1, 1, 1, 1, 1, 0, 1},
		{2, 3, 5, 9, 17, 5, 2, 1},
		{2, 6, 4, 3, 31, 1, 0, 1},
		{1, 49, 3, 3, 16, 3, 0, 1},
		// a ResNet's downsampling: 3×3 and 1×1 at stride 2, odd sizes, stride 3
		{2, 11, 28, 28, 19, 3, 1, 2},
		{2, 11, 28, 28, 25, 1, 0, 2},
		{2, 25, 15, 13, 49, 3, 1, 2},
		{1, 5, 11, 10, 7, 5, 2, 3},
		{1, 3, 2, 2, 4, 3, 1, 2},
	}
	type fusion struct {
		bias, norm, res, relu bool
	}
	var fusions []fusion
	for i := 0; i < 16; i++ {
		fusions = append(fusions, fusion{i&1 != 0, i&2 != 0, i&4 != 0, i&8 != 0})
	}
	for _, g := range geos {
		for _, f := range fusions {
			t.Run(fmt.Sprintf("%+v/%+v", g, f), func(t *testing.T) {
				st := Int8Static{Scale: 0.04, ZeroPoint: 3, QMin: -128, QMax: 127}
				wt := randomInt8Weight(rng, g.o, g.c, g.k, g.k)
				x := make([]float32, g.b*g.c*g.h*g.w)
				for i := range x {
					x[i] = float32(rng.NormFloat64() * 2)
				}
				oh, ow := (g.h+2*g.pad-g.k)/g.stride+1, (g.w+2*g.pad-g.k)/g.stride+1
				res := make([]float32, g.b*g.o*oh*ow)
				for i := range res {
					res[i] = float32(rng.NormFloat64())
				}
				var bias []float32
				if f.bias {
					bias = make([]float32, g.o)
					for i := range bias {
						bias[i] = float32(rng.NormFloat64())
					}
				}
				var norm *NormEval
				if f.norm {
					norm = &NormEval{eps: 1e-5, weight: make([]float32, g.o), bias: make([]float32, g.o), mean: make([]float32, g.o), variance: make([]float32, g.o)}
					for i := 0; i < g.o; i++ {
						norm.weight[i], norm.bias[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
						norm.mean[i], norm.variance[i] = float32(rng.NormFloat64()), float32(rng.Float64()+0.1)
					}
				}
				run := func(taps bool) []float32 {
					defer UseInt8Taps(taps)()
					p := convParams{stride: Square(g.stride), padding: Square(g.pad), dilation: Square(1), groups: 1}
					o := newConvInt8Op("conv.int8", p, wt, st)
					if taps != (o.taps != nil) {
						t.Fatalf("taps route %v, want %v", o.taps != nil, taps)
					}
					o.bias = bias
					o.epi = &epilogue{norm: norm, relu: f.relu, hasRes: f.res}
					args := []*tensor.Dense{tensor.New(tensor.WithShape(g.b, g.c, g.h, g.w), tensor.WithBacking(x))}
					shapes := []tensor.Shape{{g.b, g.c, g.h, g.w}}
					if f.res {
						args = append(args, tensor.New(tensor.WithShape(g.b, g.o, oh, ow), tensor.WithBacking(res)))
						shapes = append(shapes, tensor.Shape{g.b, g.o, oh, ow})
					}
					if _, err := o.InferShape(shapes[0], shapes[len(shapes)-1]); err != nil {
						t.Fatal(err)
					}
					var out []float32
					for rep := 0; rep < 2; rep++ { // the second call reuses the scratch
						var vs []G.Value
						for _, a := range args {
							vs = append(vs, a)
						}
						y, err := o.Do(vs...)
						if err != nil {
							t.Fatal(err)
						}
						out = append(out[:0], op.F32(y)...)
					}
					return out
				}
				want, got := run(false), run(true)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("y[%d] = %g on the taps route, %g on the columns", i, got[i], want[i])
					}
				}
			})
		}
	}
}

// The taps route gives the column route's bits on seeded random
// geometries with different kernel sizes, paddings and strides across
// rows and columns (padding past the kernel's reach too), from 1 pixel
// and 1 channel up.
func TestConvInt8TapsNonSquare(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	type geo struct{ b, c, h, w, o, kh, kw, ph, pw, sh, sw int }
	var geos []geo
	for i := 0; i < 300; i++ {
		g := geo{b: 1 + rng.IntN(3), c: 1 + rng.IntN(9), h: 1 + rng.IntN(12), w: 1 + rng.IntN(12), o: 1 + rng.IntN(20),
			kh: 1 + rng.IntN(5), kw: 1 + rng.IntN(5), ph: rng.IntN(4), pw: rng.IntN(4), sh: 1 + rng.IntN(3), sw: 1 + rng.IntN(3)}
		if g.h+2*g.ph < g.kh || g.w+2*g.pw < g.kw {
			continue
		}
		geos = append(geos, g)
	}
	for _, g := range geos {
		t.Run(fmt.Sprintf("%+v", g), func(t *testing.T) {
			st := Int8Static{Scale: 0.04, ZeroPoint: 3, QMin: -128, QMax: 127}
			wt := randomInt8Weight(rng, g.o, g.c, g.kh, g.kw)
			x := make([]float32, g.b*g.c*g.h*g.w)
			for i := range x {
				x[i] = float32(rng.NormFloat64() * 2)
			}
			run := func(taps bool) []float32 {
				defer UseInt8Taps(taps)()
				p := convParams{stride: Pair{g.sh, g.sw}, padding: Pair{g.ph, g.pw}, dilation: Square(1), groups: 1}
				o := newConvInt8Op("conv.int8", p, wt, st)
				o.epi = &epilogue{relu: true}
				shape := tensor.Shape{g.b, g.c, g.h, g.w}
				if _, err := o.InferShape(shape); err != nil {
					t.Fatal(err)
				}
				y, err := o.Do([]G.Value{tensor.New(tensor.WithShape(shape...), tensor.WithBacking(x))}...)
				if err != nil {
					t.Fatal(err)
				}
				return append([]float32(nil), op.F32(y)...)
			}
			want, got := run(false), run(true)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("y[%d] = %g on the taps route, %g on the columns", i, got[i], want[i])
				}
			}
		})
	}
}

// randomInt8Weight is an o×c×kh×kw int8 filter bank with per-channel
// scales, every code equally likely.
func randomInt8Weight(rng *rand.Rand, o, c, kh, kw int) Int8Weight {
	wt := Int8Weight{Shape: []int{o, c, kh, kw}, Q: make([]int8, o*c*kh*kw), Scale: make([]float32, o)}
	for i := range wt.Q {
		wt.Q[i] = int8(rng.IntN(256) - 128)
	}
	for i := range wt.Scale {
		wt.Scale[i] = 0.001 + rng.Float32()*0.02
	}
	return wt
}
