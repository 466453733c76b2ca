package nn

import (
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/op"
)

// Elementwise activations (relu6, sigmoid, tanh, silu, gelu) share one op
// shape: y = f(x) of any shape, and dx = f'(x, y)·dy. Each type's file holds
// its kernels, written in float32 with the operations in the order of ATen's
// CPU kernels (aten/src/ATen/native/cpu/Activation.cpp and UnaryOpsKernel.cpp
// in PyTorch 1.13); exp, erf and tanh are computed in float64 and rounded, a
// correctly rounded stand-in for Sleef's 1-ulp float32 versions.

// pointwise is an activation's two kernels over whole tensors (one call per
// Do, so the per-element loop stays a plain loop).
type pointwise struct {
	name string
	// forward writes y = f(x).
	forward func(x, y []float32)
	// backward writes dx from the layer's input x, its output y and dy.
	backward func(x, y, dy, dx []float32)
}

// activation is the config of a parameter-free, shape-keeping layer.
type activation struct{}

func (activation) Shape(in []arch.Shape) (arch.Shape, error) { return in[0], nil }
func (activation) Tensors([]arch.Shape) []arch.Tensor        { return nil }
func (activation) MACs([]arch.Shape, arch.Shape) int64       { return 0 }

// buildPointwise applies an activation to the layer's input.
func buildPointwise(b Builder, f *pointwise, x *G.Node) (*G.Node, error) {
	return G.ApplyOp(&pointwiseOp{Base: op.NewBase(b.Name()), f: f, dims: x.Dims()}, x)
}

// pointwiseOp is y = f(x).
type pointwiseOp struct {
	op.Base
	f    *pointwise
	dims int
	out  *tensor.Dense
}

func (o *pointwiseOp) Arity() int   { return 1 }
func (o *pointwiseOp) Type() hmType { return op.Fn(o.dims, o.dims) }
func (o *pointwiseOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *pointwiseOp) Do(in ...G.Value) (G.Value, error) {
	y := op.Buffer(&o.out, op.Dims(in[0])...)
	x := op.F32(in[0])
	o.f.forward(x, op.F32(y)[:len(x)])
	return y, nil
}
func (o *pointwiseOp) DiffWRT(int) []bool { return []bool{true} }
func (o *pointwiseOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g := &pointwiseGradOp{Base: op.NewBase(o.Name() + ".grad"), f: o.f, dims: o.dims}
	dx, err := G.ApplyOp(g, inputs[0], output, grad)
	return G.Nodes{dx}, err
}

// pointwiseGradOp is dx from x, y and dy.
type pointwiseGradOp struct {
	op.Base
	f    *pointwise
	dims int
	out  *tensor.Dense
}

func (o *pointwiseGradOp) Arity() int   { return 3 }
func (o *pointwiseGradOp) Type() hmType { return op.Fn(o.dims, o.dims, o.dims, o.dims) }
func (o *pointwiseGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *pointwiseGradOp) Do(in ...G.Value) (G.Value, error) {
	dx := op.Buffer(&o.out, op.Dims(in[0])...)
	x := op.F32(in[0])
	n := len(x)
	o.f.backward(x, op.F32(in[1])[:n], op.F32(in[2])[:n], op.F32(dx)[:n])
	return dx, nil
}

// exp32, tanh32 and erf32 are the float32 functions, correctly rounded.
func exp32(x float32) float32  { return float32(math.Exp(float64(x))) }
func tanh32(x float32) float32 { return float32(math.Tanh(float64(x))) }
func erf32(x float32) float32  { return float32(math.Erf(float64(x))) }
