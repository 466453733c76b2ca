package nn

import (
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/op"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "dropout",
		Summary: "nn.Dropout: in training, zeroes each value with probability p and scales the rest by 1/(1-p); the identity in eval",
		New:     func() arch.Layer { return &Dropout{P: 0.5} },
	})
}

// Dropout is nn.Dropout (inverted dropout). Its masks come from the stage's
// seeded random stream (Builder.Rand), so a training run repeats bit for bit
// and a resumed run, which restores that stream, continues as if never
// stopped.
//
// The draw, per training step: one rng.Float64() for every value of the
// layer's [batch, ...] input in row-major order, padding rows of a short
// batch included (so every step draws the same count); a value is dropped
// when its draw is below p. p = 0 and p = 1 draw nothing, as in PyTorch.
type Dropout struct {
	P float64 `json:"p" minimum:"0" maximum:"1" doc:"probability of zeroing each value while training"`
}

func (*Dropout) Shape(in []arch.Shape) (arch.Shape, error) { return in[0], nil }
func (*Dropout) Tensors([]arch.Shape) []arch.Tensor        { return nil }
func (*Dropout) MACs([]arch.Shape, arch.Shape) int64       { return 0 }

// Build is the input itself in eval and for p = 0 (PyTorch returns its
// input); otherwise y = x·noise with noise 0 or 1/(1-p), the scale rounded
// as PyTorch's noise.div_(1 - p) rounds it: 1 / float32(1 - p).
func (d *Dropout) Build(b Builder, in []*G.Node) (*G.Node, error) {
	x := in[0]
	if !b.Training() || d.P == 0 {
		return x, nil
	}
	o := &dropoutOp{Base: op.NewBase(b.Name()), p: d.P, dims: x.Dims(), st: &dropoutState{}}
	if d.P < 1 {
		o.scale = 1 / float32(1-d.P)
		if o.rng = b.Rand(); o.rng == nil {
			return nil, fmt.Errorf("dropout %s: training needs the stage's random stream for its masks, and the net has none (model.NetOptions.Rand)", b.Name())
		}
	}
	return G.ApplyOp(o, x)
}

// dropoutState is the last forward's noise (0 or the scale per value), which
// the gradient multiplies by.
type dropoutState struct{ noise []float32 }

// dropoutOp draws a mask on every Do and applies it.
type dropoutOp struct {
	op.Base
	p     float64
	scale float32 // 0 when p = 1: everything is dropped
	rng   *rand.Rand
	dims  int
	st    *dropoutState
	out   *tensor.Dense
}

func (o *dropoutOp) Arity() int   { return 1 }
func (o *dropoutOp) Type() hmType { return op.Fn(o.dims, o.dims) }
func (o *dropoutOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *dropoutOp) Do(in ...G.Value) (G.Value, error) {
	y := op.Buffer(&o.out, op.Dims(in[0])...)
	x := op.F32(in[0])
	yd := op.F32(y)[:len(x)]
	if len(o.st.noise) != len(x) {
		o.st.noise = make([]float32, len(x))
	}
	noise := o.st.noise
	if o.rng == nil { // p = 1
		clear(noise)
	} else {
		for i := range noise {
			if o.rng.Float64() < o.p {
				noise[i] = 0
			} else {
				noise[i] = o.scale
			}
		}
	}
	// x·0 rather than 0, as PyTorch multiplies: an infinite or NaN input
	// stays NaN where dropped.
	for i, v := range x {
		yd[i] = v * noise[i]
	}
	return y, nil
}
func (o *dropoutOp) DiffWRT(int) []bool { return []bool{true} }
func (o *dropoutOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&dropoutGradOp{Base: op.NewBase(o.Name() + ".grad"), st: o.st, dims: o.dims}, grad)
	return G.Nodes{dx}, err
}

// dropoutGradOp is dx = dy·noise, the forward's mask and scale.
type dropoutGradOp struct {
	op.Base
	st   *dropoutState
	dims int
	out  *tensor.Dense
}

func (o *dropoutGradOp) Arity() int   { return 1 }
func (o *dropoutGradOp) Type() hmType { return op.Fn(o.dims, o.dims) }
func (o *dropoutGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *dropoutGradOp) Do(in ...G.Value) (G.Value, error) {
	dx := op.Buffer(&o.out, op.Dims(in[0])...)
	dy := op.F32(in[0])
	d := op.F32(dx)[:len(dy)]
	noise := o.st.noise[:len(dy)]
	for i, g := range dy {
		d[i] = g * noise[i]
	}
	return dx, nil
}
