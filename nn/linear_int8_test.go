package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/op"
	"github.com/shrink-ml/shrink/quant"
)

// A statically quantized linear layer on integer kernels equals its
// definition bit for bit: Σ (q - zp)·w exactly, rescaled, plus the bias,
// on sizes around the kernels' tiles, signed and reduce_range codes.
func TestLinearStaticInt8MatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sz := range [][3]int{{1, 1, 1}, {1, 784, 300}, {3, 5, 17}, {7, 33, 64}, {25, 100, 10}, {130, 13, 65}} {
		for _, signed := range []bool{true, false} {
			rows, in, out := sz[0], sz[1], sz[2]
			t.Run(fmt.Sprintf("%dx%dx%d/signed=%v", rows, in, out, signed), func(t *testing.T) {
				st := Int8Static{Scale: 0.02, ZeroPoint: -5, QMin: -128, QMax: 127}
				if !signed {
					st = Int8Static{Scale: 0.04, ZeroPoint: 50, QMin: 0, QMax: 127}
				}
				q := make([]int8, out*in)
				for i := range q {
					q[i] = int8(rng.IntN(255) - 127)
				}
				scale := make([]float32, out)
				bias := make([]float32, out)
				for i := range scale {
					scale[i] = 0.001 + 0.01*rng.Float32()
					bias[i] = float32(rng.NormFloat64())
				}
				o := &linearInt8Op{act: &Int8{Act: quant.Spec{Bits: 8}, Static: &st}, w: int8Pack(q, out, in), scale: scale, bias: true}
				x := make([]float32, rows*in)
				for i := range x {
					x[i] = float32(rng.NormFloat64() * 2)
				}
				y, err := o.Do(tensor.New(tensor.WithShape(rows, in), tensor.WithBacking(x)), tensor.New(tensor.WithShape(out), tensor.WithBacking(bias)))
				if err != nil {
					t.Fatal(err)
				}
				got := op.F32(y)
				inv := 1 / st.Scale
				for i := 0; i < rows; i++ {
					for j := 0; j < out; j++ {
						var s int64
						for k := 0; k < in; k++ {
							c := int64(math.RoundToEven(float64(x[i*in+k]*inv))) + int64(st.ZeroPoint)
							c = min(max(c, int64(st.QMin)), int64(st.QMax))
							s += (c - int64(st.ZeroPoint)) * int64(q[j*in+k])
						}
						want := float32(float32(int32(s))*(st.Scale*scale[j])) + bias[j]
						if g := got[i*out+j]; g != want {
							t.Fatalf("y[%d][%d] = %g, want %g", i, j, g, want)
						}
					}
				}
			})
		}
	}
}

// A dynamically quantized linear layer whose inputs are not reduce_range
// (signed codes -128..127 over the tensor's own range, which the kernels
// shift to 0..255) equals its definition bit for bit, as does one with
// reduce_range codes, on sizes around the kernels' tiles.
func TestLinearDynamicInt8MatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, sz := range [][3]int{{1, 1, 1}, {1, 784, 300}, {3, 5, 17}, {7, 33, 64}, {256, 100, 10}, {130, 13, 65}} {
		for _, reduce := range []bool{false, true} {
			rows, in, out := sz[0], sz[1], sz[2]
			t.Run(fmt.Sprintf("%dx%dx%d/reduce=%v", rows, in, out, reduce), func(t *testing.T) {
				spec := quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor, ReduceRange: reduce}
				q := make([]int8, out*in)
				for i := range q {
					q[i] = int8(rng.IntN(256) - 128)
				}
				scale := make([]float32, out)
				bias := make([]float32, out)
				for i := range scale {
					scale[i] = 0.001 + 0.01*rng.Float32()
					bias[i] = float32(rng.NormFloat64())
				}
				o := &linearInt8Op{act: &Int8{Act: spec}, w: int8Pack(q, out, in), scale: scale, bias: true}
				x := make([]float32, rows*in)
				lo, hi := float32(0), float32(0)
				for i := range x {
					x[i] = float32(rng.NormFloat64()*2 + 0.5)
					lo, hi = min(lo, x[i]), max(hi, x[i])
				}
				y, err := o.Do(tensor.New(tensor.WithShape(rows, in), tensor.WithBacking(x)), tensor.New(tensor.WithShape(out), tensor.WithBacking(bias)))
				if err != nil {
					t.Fatal(err)
				}
				got := op.F32(y)
				s, zp := spec.ParamsOf(lo, hi)
				qmin, qmax := spec.Range()
				inv := 1 / s
				for i := 0; i < rows; i++ {
					for j := 0; j < out; j++ {
						var sum int64
						for k := 0; k < in; k++ {
							c := int64(math.RoundToEven(float64(x[i*in+k]*inv))) + int64(zp)
							c = min(max(c, int64(qmin)), int64(qmax))
							sum += (c - int64(zp)) * int64(q[j*in+k])
						}
						want := float32(float32(int32(sum))*(s*scale[j])) + bias[j]
						if g := got[i*out+j]; g != want {
							t.Fatalf("y[%d][%d] = %g, want %g", i, j, g, want)
						}
					}
				}
			})
		}
	}
}

// A ReLU fused into the integer linear layer's output pass gives the bits
// of the layer followed by a separate ReLU, for static and dynamic inputs.
func TestLinearInt8FusedReLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, sz := range [][3]int{{1, 784, 300}, {3, 5, 17}, {256, 300, 100}, {9, 100, 10}} {
		for _, static := range []bool{false, true} {
			rows, in, out := sz[0], sz[1], sz[2]
			t.Run(fmt.Sprintf("%dx%dx%d/static=%v", rows, in, out, static), func(t *testing.T) {
				act := &Int8{Act: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}}
				if static {
					act.Static = &Int8Static{Scale: 0.03, ZeroPoint: -7, QMin: -128, QMax: 127}
				}
				q := make([]int8, out*in)
				for i := range q {
					q[i] = int8(rng.IntN(256) - 128)
				}
				scale, bias := make([]float32, out), make([]float32, out)
				for i := range scale {
					scale[i] = 0.001 + 0.01*rng.Float32()
					bias[i] = float32(rng.NormFloat64())
				}
				x := make([]float32, rows*in)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				run := func(relu bool) []float32 {
					o := &linearInt8Op{act: act, w: int8Pack(q, out, in), scale: scale, bias: true, relu: relu}
					y, err := o.Do(tensor.New(tensor.WithShape(rows, in), tensor.WithBacking(x)), tensor.New(tensor.WithShape(out), tensor.WithBacking(bias)))
					if err != nil {
						t.Fatal(err)
					}
					return op.F32(y)
				}
				plain, fused := run(false), run(true)
				pos := 0
				for i, v := range plain {
					want := max(v, 0)
					if math.Float32bits(fused[i]) != math.Float32bits(want) {
						t.Fatalf("y[%d] = %v, want max(%v, 0)", i, fused[i], v)
					}
					if v > 0 {
						pos++
					}
				}
				if pos == 0 || pos == len(plain) {
					t.Fatalf("%d of %d outputs positive: the ReLU was not exercised", pos, len(plain))
				}
			})
		}
	}
}

// At small batches an integer linear layer leaves out the input columns
// that hold no weight; its outputs are the bits of the full product, for
// static and dynamic inputs, with and without a fused ReLU.
func TestLinearInt8SkipsEmptyColumns(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, sz := range [][2]int{{784, 300}, {33, 17}, {100, 10}, {5, 1}} {
		for _, static := range []bool{false, true} {
			for _, rows := range []int{1, 3} {
				in, out := sz[0], sz[1]
				t.Run(fmt.Sprintf("%dx%dx%d/static=%v", rows, in, out, static), func(t *testing.T) {
					act := &Int8{Act: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}, ReLU: rows == 3}
					if static {
						act.Static = &Int8Static{Scale: 0.03, ZeroPoint: -7, QMin: -128, QMax: 127}
					}
					w := Int8Weight{Rows: out, Cols: in, Q: make([]int8, out*in), Scale: []float32{0.01}}
					for c := 0; c < in; c++ {
						if c%5 == 0 || c == in-1 || (c > in/3 && c < in/2) { // runs of empty columns, the last one too
							continue
						}
						for j := 0; j < out; j++ {
							if rng.IntN(4) == 0 {
								w.Q[j*in+c] = int8(rng.IntN(256) - 128)
							}
						}
						w.Q[rng.IntN(out)*in+c] = int8(rng.IntN(127) + 1)
					}
					bias := make([]float32, out)
					for i := range bias {
						bias[i] = float32(rng.NormFloat64())
					}
					x := make([]float32, rows*in)
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					run := func(batch int) ([]float32, *linearInt8Op) {
						o := newLinearInt8Op("fc", act, w, batch)
						o.bias = true
						y, err := o.Do(tensor.New(tensor.WithShape(rows, in), tensor.WithBacking(x)), tensor.New(tensor.WithShape(out), tensor.WithBacking(bias)))
						if err != nil {
							t.Fatal(err)
						}
						return slices.Clone(op.F32(y)), o
					}
					full, of := run(skipBatch + 1)
					skipped, os := run(rows)
					if of.runs != nil || os.runs == nil || os.w.k >= in {
						t.Fatalf("columns kept: %d of %d with skipping (runs %v), %v without", os.w.k, in, os.runs, of.runs)
					}
					for i := range full {
						if math.Float32bits(full[i]) != math.Float32bits(skipped[i]) {
							t.Fatalf("y[%d] = %v, want %v (the full product)", i, skipped[i], full[i])
						}
					}
				})
			}
		}
	}
}
