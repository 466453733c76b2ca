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
		Name:    "last",
		Summary: "out[:, -1, :]: a sequence's last step [T, F] -> [F] (after an lstm, its final hidden state)",
		New:     func() arch.Layer { return &Last{} },
	})
}

// Last keeps a sequence's last step.
type Last struct{}

func (*Last) Shape(in []arch.Shape) (arch.Shape, error) {
	if len(in[0]) != 2 {
		return nil, fmt.Errorf("takes sequences [steps, features], not %v", in[0])
	}
	return arch.Shape{in[0][1]}, nil
}
func (*Last) Tensors([]arch.Shape) []arch.Tensor  { return nil }
func (*Last) MACs([]arch.Shape, arch.Shape) int64 { return 0 }

func (*Last) Build(b Builder, in []*G.Node) (*G.Node, error) {
	return G.ApplyOp(&lastOp{Base: op.NewBase(b.Name())}, in[0])
}

// lastOp is x[:, T-1, :] of x [N, T, F].
type lastOp struct {
	op.Base
	out *tensor.Dense
}

func (o *lastOp) Arity() int   { return 1 }
func (o *lastOp) Type() hmType { return op.Fn(3, 2) }
func (o *lastOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := op.ShapeOf(in[0])
	return tensor.Shape{s[0], s[2]}, nil
}
func (o *lastOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	n, t, f := s[0], s[1], s[2]
	y := op.Buffer(&o.out, n, f)
	x, yd := op.F32(in[0]), op.F32(y)
	for i := 0; i < n; i++ {
		copy(yd[i*f:(i+1)*f], x[(i*t+t-1)*f:(i*t+t)*f])
	}
	return y, nil
}
func (o *lastOp) DiffWRT(int) []bool { return []bool{true} }
func (o *lastOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&lastGradOp{Base: op.NewBase(o.Name() + ".grad"), shape: inputs[0].Shape().Clone()}, grad)
	return G.Nodes{dx}, err
}

// lastGradOp spreads dy [N, F] back to [N, T, F]: the last step's, zeros
// elsewhere.
type lastGradOp struct {
	op.Base
	shape tensor.Shape
	out   *tensor.Dense
}

func (o *lastGradOp) Arity() int   { return 1 }
func (o *lastGradOp) Type() hmType { return op.Fn(2, 3) }
func (o *lastGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.shape.Clone(), nil
}
func (o *lastGradOp) Do(in ...G.Value) (G.Value, error) {
	n, t, f := o.shape[0], o.shape[1], o.shape[2]
	dx := op.Buffer(&o.out, n, t, f)
	d, dy := op.F32(dx), op.F32(in[0])
	clear(d)
	for i := 0; i < n; i++ {
		copy(d[(i*t+t-1)*f:(i*t+t)*f], dy[i*f:(i+1)*f])
	}
	return dx, nil
}
