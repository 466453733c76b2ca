// Package nn holds shrink's layer types: for each, in one file, its recipe keys
// (a config struct decoded and schema'd like a stage config), its shape rule,
// its tensors with PyTorch's state_dict names and initialization, which
// compressions apply, and its forward and backward gorgonia ops. A type
// registers itself with package arch in init, so the pipeline can validate a
// network without importing this package's tensor code; package model builds
// and trains graphs from them.
//
// Numerics are PyTorch's (float32, the same formulas and reduction orders where
// they matter); every type is tested against fixtures PyTorch 1.13 made
// (testdata/layers).
package nn

import (
	"math/rand/v2"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"

	"github.com/shrink-ml/shrink/quant"
)

// hmType is an op's type signature.
type hmType = hm.Type

// Builder is what a layer's Build needs from the network it joins; model.Net
// implements it for each layer in turn.
type Builder interface {
	Graph() *G.ExprGraph
	// Batch is the graph's batch size (every input's first dimension).
	Batch() int
	// Weights are the layer's weight nodes, fake-quantized while training a
	// quantized layer: its weight, or the two factors of a factored layer
	// (NAME.0.weight then NAME.1.weight).
	Weights() []*G.Node
	// Param is a learnable tensor by suffix (bias, weight of a norm), nil when
	// the layer has none (bias: false). "bias" of a factored layer is
	// NAME.1.bias.
	Param(suffix string) *G.Node
	// Buffer is a buffer's values by suffix (running_mean), which training
	// updates in place.
	Buffer(suffix string) []float32
	// Counter is an int64 buffer by suffix (num_batches_tracked).
	Counter(suffix string) *int64
	// Training says whether the net trains: batch norm uses the batch's
	// statistics and updates its running ones, dropout drops.
	Training() bool
	// Rows points at how many rows of the batch are real. A short batch is
	// padded to the graph's size with copies of row 0; statistics over the
	// batch must count only the real rows.
	Rows() *int
	// Rand draws dropout masks: the stage's seeded stream, so runs repeat.
	Rand() *rand.Rand
	// Name is the layer's label, for op names and messages.
	Name() string
	// Int8 is the layer's integer form when it evaluates on integer
	// kernels (a dynamically quantized layer in eval, see Int8); nil when
	// it computes in float.
	Int8() *Int8
	// ActQuant fake-quantizes the inputs of a layer type that quantizes its
	// own inputs (InputQuantizer) when the layer's inputs are dynamically
	// quantized and it computes in float (training); nil otherwise.
	ActQuant() ActQuantizer
}

// InputQuantizer is implemented by layer types that quantize their inputs
// themselves rather than through the fake quantizer the network puts before
// a quantized layer: an LSTM quantizes its input sequence once and its hidden
// state at every step.
type InputQuantizer interface {
	QuantizesInputs() bool
}

// Int8Runner is implemented by layer types with integer kernels for
// dynamically quantized inference (Builder.Int8).
type Int8Runner interface {
	RunsInt8() bool
}

// ActQuantizer is dynamic activation quantization in float: each call rounds
// a whole tensor to the grid of its own range.
type ActQuantizer interface {
	// FakeQuantize writes x rounded to its grid (one scale and zero point for
	// all of x) to out, which may be x, and 1 to inside where x fell within
	// the grid's range, 0 where it was clipped (the straight-through mask).
	FakeQuantize(x, out, inside []float32)
}

// Int8 is a quantized layer as integer kernels run it: each weight's
// integer codes and scales (zero points are 0: the weights are symmetric)
// and how its inputs are quantized: at run time, per tensor, into unsigned
// codes 0..Act.Range's qmax (dynamic), or with the calibrated parameters
// Static.
type Int8 struct {
	Weights []Int8Weight // in Builder.Weights' order
	Act     quant.Spec
	Static  *Int8Static // nil: dynamic
	// ReLU: the layer's output goes through a ReLU, which the layer applies
	// in its output pass (the network then skips the ReLU layer). Set only
	// for types that implement ReLUFuser.
	ReLU bool
}

// ReLUFuser is implemented by layer types whose integer kernels apply a
// ReLU that follows them in their output pass (Int8.ReLU), with the bits
// the separate ReLU gives.
type ReLUFuser interface {
	FusesReLU() bool
}

// Int8Static are a statically quantized input's parameters: codes
// clamp(round(x/Scale) + ZeroPoint, QMin, QMax), at most 256 of them
// (QMin is negative for signed codes, which the kernels shift to unsigned
// ones).
type Int8Static struct {
	Scale      float32
	ZeroPoint  int32
	QMin, QMax int32
}

// StaticInt8Runner is implemented by layer types with integer kernels for
// statically quantized inputs.
type StaticInt8Runner interface {
	RunsStaticInt8() bool
}

// Int8Weight is one weight as integers: Rows (output units) of Cols values,
// row-major in PyTorch's layout, and one scale per tensor or per row.
type Int8Weight struct {
	Rows, Cols int
	Shape      []int // the weight's own shape ([out, in, kh, kw] for a convolution)
	Q          []int8
	Scale      []float32
}

// Op is the tensor half of a layer type; its arch.Layer config implements it.
type Op interface {
	// Build adds the layer to the graph over its inputs' nodes (each
	// [batch, ...sample shape]) and returns its output node.
	Build(b Builder, in []*G.Node) (*G.Node, error)
}

// Initializer is implemented by layers with tensors: Init draws their initial
// values as the PyTorch module's constructor does, in state_dict order, from
// rng.
type Initializer interface {
	Init(ts []InitTensor, rng *rand.Rand)
}

// InitTensor is one tensor to initialize: the layer's own, or for a factored
// layer its factors (0.weight, 1.weight, 1.bias).
type InitTensor struct {
	Suffix string
	Shape  []int
	Data   []float32
	Int    []int64 // num_batches_tracked
}

// Uniform fills v from U(-bound, bound) as shrink has always drawn it:
// bound * (2u - 1) with u from rng.Float64, rounded to float32.
func Uniform(v []float32, bound float32, rng *rand.Rand) {
	for i := range v {
		v[i] = bound * float32(2*rng.Float64()-1)
	}
}

// fanIn is the number of inputs of one output unit of a weight: everything
// but its first dimension.
func fanIn(shape []int) int {
	n := 1
	for _, d := range shape[1:] {
		n *= d
	}
	return n
}
