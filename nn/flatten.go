package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/op"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "flatten",
		Summary: "nn.Flatten(): one sample's values as a vector, row-major (C, H, W)",
		New:     func() arch.Layer { return &Flatten{} },
	})
}

// Flatten is nn.Flatten() (from dim 1).
type Flatten struct{}

func (*Flatten) Shape(in []arch.Shape) (arch.Shape, error) { return arch.Shape{in[0].Size()}, nil }
func (*Flatten) Tensors([]arch.Shape) []arch.Tensor        { return nil }
func (*Flatten) MACs([]arch.Shape, arch.Shape) int64       { return 0 }

func (*Flatten) Build(b Builder, in []*G.Node) (*G.Node, error) {
	s := in[0].Shape()
	return Reshape(b.Name(), in[0], tensor.Shape{s[0], s.TotalSize() / s[0]})
}

// Reshape views a node under another shape of the same size, without copying.
// A node already of that shape is returned as it is.
func Reshape(name string, x *G.Node, to tensor.Shape) (*G.Node, error) {
	if x.Shape().Eq(to) {
		return x, nil
	}
	return G.ApplyOp(&reshapeOp{Base: op.NewBase(name), from: x.Shape().Clone(), to: to}, x)
}

// reshapeOp views its input under another shape of the same size without
// copying; its gradient is the reverse view.
type reshapeOp struct {
	op.Base
	from, to tensor.Shape
	src      []float32
	out      *tensor.Dense
}

func (o *reshapeOp) Arity() int   { return 1 }
func (o *reshapeOp) Type() hmType { return op.Fn(len(o.from), len(o.to)) }
func (o *reshapeOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	if op.ShapeOf(in[0]).TotalSize() != o.to.TotalSize() {
		return nil, fmt.Errorf("reshape: %v does not fit %v", op.ShapeOf(in[0]), o.to)
	}
	return o.to.Clone(), nil
}
func (o *reshapeOp) Do(in ...G.Value) (G.Value, error) {
	x := op.F32(in[0])
	if o.out == nil || &o.src[0] != &x[0] {
		o.src = x
		o.out = tensor.New(tensor.WithShape(o.to...), tensor.WithBacking(x))
	}
	return o.out, nil
}
func (o *reshapeOp) DiffWRT(int) []bool { return []bool{true} }
func (o *reshapeOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	back, err := G.ApplyOp(&reshapeOp{Base: op.NewBase(o.Name() + ".grad"), from: o.to, to: o.from}, grad)
	return G.Nodes{back}, err
}
