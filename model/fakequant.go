package model

import (
	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/quant"
)

// Observer says where a fake-quantize op takes its range from.
type Observer int

const (
	// ObserveEach takes min and max of every input it sees: weights during
	// training (their ranges follow each step), activations in dynamic mode.
	ObserveEach Observer = iota
	// MovingAverage tracks activation ranges across batches with PyTorch's
	// MovingAverageMinMaxObserver (averaging constant 0.01).
	MovingAverage
	// Fixed uses given parameters: calibrated activations, stored weights.
	Fixed
)

// movingAverageConstant is torch.ao's default for MovingAverageMinMaxObserver.
const movingAverageConstant = 0.01

// fakeQuantOp rounds its input to the quantization grid (quantize, then
// dequantize, as the spec's formula) and passes gradients straight through where
// the input was inside the grid's range (PyTorch's FakeQuantize: the clipped
// straight-through estimator).
type fakeQuantOp struct {
	opBase
	spec     quant.Spec
	observer Observer
	dims     int
	// Params are the parameters of the last forward pass (or the fixed ones).
	Params quant.Params
	// running min and max for MovingAverage; Seen is false until the first batch.
	runMin, runMax float32
	Seen           bool
	mins, maxs     []float32 // the observer's scratch: a step allocates nothing
	inside         []float32 // 1 where the last input was inside the range
	out            *tensor.Dense
}

func newFakeQuant(spec quant.Spec, obs Observer, dims int) *fakeQuantOp {
	return &fakeQuantOp{opBase: newBase("fakeQuant(" + spec.String() + ")"), spec: spec, observer: obs, dims: dims}
}

func (o *fakeQuantOp) Arity() int    { return 1 }
func (o *fakeQuantOp) Type() hm.Type { return hm.NewFnType(tensorOf(o.dims), tensorOf(o.dims)) }
func (o *fakeQuantOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(in[0]).Clone(), nil
}

func (o *fakeQuantOp) Do(in ...G.Value) (G.Value, error) {
	shape := dims(in[0])
	x := f32(in[0])
	y := buffer(&o.out, shape...)
	// o.Params is the op's own in these two modes (Fixed shares the layer's and
	// never writes it), so it is rewritten in place.
	switch o.observer {
	case ObserveEach:
		o.observe(o.spec.Channels(shape))
		quant.MinMaxInto(x, o.mins, o.maxs)
		o.spec.ObserveInto(&o.Params, o.mins, o.maxs)
	case MovingAverage:
		o.observe(1)
		quant.MinMaxInto(x, o.mins, o.maxs)
		if !o.Seen {
			o.runMin, o.runMax, o.Seen = o.mins[0], o.maxs[0], true
		} else {
			o.runMin += movingAverageConstant * (o.mins[0] - o.runMin)
			o.runMax += movingAverageConstant * (o.maxs[0] - o.runMax)
		}
		o.mins[0], o.maxs[0] = o.runMin, o.runMax
		o.spec.ObserveInto(&o.Params, o.mins, o.maxs)
	}
	if len(o.inside) != len(x) {
		o.inside = make([]float32, len(x))
	}
	o.spec.FakeQuantizeMask(x, o.Params, f32(y), o.inside)
	return y, nil
}

func (o *fakeQuantOp) DiffWRT(int) []bool { return []bool{true} }
func (o *fakeQuantOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&steOp{opBase: newBase("fakeQuantGrad"), fwd: o}, grad)
	return G.Nodes{d}, err
}

// steOp is the clipped straight-through gradient: dy where the forward input was
// inside the quantization range, 0 elsewhere.
type steOp struct {
	opBase
	fwd *fakeQuantOp
	out *tensor.Dense
}

func (o *steOp) Arity() int { return 1 }
func (o *steOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(o.fwd.dims), tensorOf(o.fwd.dims))
}
func (o *steOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(in[0]).Clone(), nil
}
func (o *steOp) Do(in ...G.Value) (G.Value, error) {
	d := buffer(&o.out, dims(in[0])...)
	dy, dd := f32(in[0]), f32(d)
	for i, v := range dy {
		dd[i] = v * o.fwd.inside[i]
	}
	return d, nil
}

// observe sizes the observer's scratch for channels ranges.
func (o *fakeQuantOp) observe(channels int) {
	if len(o.mins) != channels {
		o.mins, o.maxs = make([]float32, channels), make([]float32, channels)
	}
}
