package nn

import (
	"reflect"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/op"
	"github.com/shrink-ml/shrink/internal/vec"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "relu",
		Summary: "nn.ReLU: max(x, 0)",
		New:     func() arch.Layer { return &ReLU{} },
	})
}

// ReLU is nn.ReLU.
type ReLU struct{}

func (*ReLU) Shape(in []arch.Shape) (arch.Shape, error) { return in[0], nil }
func (*ReLU) Tensors([]arch.Shape) []arch.Tensor        { return nil }
func (*ReLU) MACs([]arch.Shape, arch.Shape) int64       { return 0 }

func (*ReLU) Build(b Builder, in []*G.Node) (*G.Node, error) {
	if bn, ok := in[0].Op().(*bnOp); ok && bn.relu {
		return in[0], nil // the batch norm applied it (ReLUFusingBuilder)
	}
	if add, ok := in[0].Op().(*addOp); ok && add.relu {
		return in[0], nil // the residual add applied it (ReLUFusingBuilder)
	}
	return G.ApplyOp(&reluOp{Base: op.NewBase(b.Name()), dims: in[0].Dims()}, in[0])
}

// reluOp is max(x, 0), of any shape.
type reluOp struct {
	op.Base
	dims int
	out  *tensor.Dense
	ew   elementwise
	x, y []float32 // during Do
}

func (o *reluOp) Arity() int   { return 1 }
func (o *reluOp) Type() hmType { return op.Fn(o.dims, o.dims) }
func (o *reluOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *reluOp) Do(in ...G.Value) (G.Value, error) {
	y := op.Buffer(&o.out, op.Dims(in[0])...)
	o.x, o.y = op.F32(in[0]), op.F32(y)
	o.ew.do(o, len(o.x))
	o.x, o.y = nil, nil
	return y, nil
}

func (o *reluOp) Run(part, _ int) {
	lo, hi := o.ew.span(part)
	vec.ReLU(o.y[lo:hi], o.x[lo:hi])
}
func (o *reluOp) DiffWRT(int) []bool { return []bool{true} }
func (o *reluOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&reluGradOp{Base: op.NewBase("reluGrad"), dims: o.dims}, output, grad)
	return G.Nodes{dx}, err
}

// reluGradOp passes the gradient where the ReLU's output is positive.
type reluGradOp struct {
	op.Base
	dims      int
	out       *tensor.Dense
	ew        elementwise
	y, dy, dx []float32 // during Do
}

func (o *reluGradOp) Arity() int   { return 2 }
func (o *reluGradOp) Type() hmType { return op.Fn(o.dims, o.dims, o.dims) }
func (o *reluGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *reluGradOp) Do(in ...G.Value) (G.Value, error) {
	dx := op.Buffer(&o.out, op.Dims(in[0])...)
	o.y, o.dy, o.dx = op.F32(in[0]), op.F32(in[1]), op.F32(dx)
	o.ew.do(o, len(o.y))
	o.y, o.dy, o.dx = nil, nil, nil
	return dx, nil
}

func (o *reluGradOp) Run(part, _ int) {
	lo, hi := o.ew.span(part)
	// y is +0 or positive: keep dy where its bits are non-zero.
	vec.ReLUGrad(o.dx[lo:hi], o.y[lo:hi], o.dy[lo:hi])
}

// reluGradOf is the gradient of a ReLU whose output is y, from its output's
// gradient dy. When dy is backpropagation's sum of two gradients (y feeds
// two nodes: a residual block's output feeds the next block's convolution
// and its shortcut), the sum and the mask run in one pass (sumReLUGradOp),
// and the sum's own node is left for nothing to read.
func reluGradOf(y, dy *G.Node) (*G.Node, error) {
	if a, b, ok := gradientSum(dy); ok {
		return G.ApplyOp(&sumReLUGradOp{reluGradOp: reluGradOp{Base: op.NewBase("reluGrad"), dims: y.Dims()}}, y, a, b)
	}
	return G.ApplyOp(&reluGradOp{Base: op.NewBase("reluGrad"), dims: y.Dims()}, y, dy)
}

// gorgoniaAdd is the type of gorgonia's elementwise operators.
var gorgoniaAdd = func() reflect.Type {
	g := G.NewGraph()
	a := G.NewScalar(g, G.Float32, G.WithName("a"))
	return reflect.TypeOf(G.Must(G.Add(a, G.NewScalar(g, G.Float32, G.WithName("b")))).Op())
}()

// gradientSum returns the operands of n when n is gorgonia's elementwise a +
// b of two float32 tensors of n's shape (what backpropagation adds where a
// value feeds two nodes; model's executor computes it as vec.Add).
func gradientSum(n *G.Node) (a, b *G.Node, ok bool) {
	o := n.Op()
	if o == nil || reflect.TypeOf(o) != gorgoniaAdd || !strings.HasPrefix(o.String(), "+ ") || o.Arity() != 2 || n.Graph() == nil {
		return nil, nil, false
	}
	var in []*G.Node
	for it := n.Graph().From(n.ID()); it.Next(); {
		in = append(in, it.Node().(*G.Node))
	}
	if len(in) != 2 {
		return nil, nil, false
	}
	for _, c := range in {
		if c.Dtype() != tensor.Float32 || !c.Shape().Eq(n.Shape()) {
			return nil, nil, false
		}
	}
	return in[0], in[1], true
}

// sumReLUGradOp is reluGradOp of the sum a + b: dx = a + b where y is
// non-zero, the bits of the sum then the mask.
type sumReLUGradOp struct {
	reluGradOp
	a, b []float32 // during Do
}

func (o *sumReLUGradOp) Arity() int   { return 3 }
func (o *sumReLUGradOp) Type() hmType { return op.Fn(o.dims, o.dims, o.dims, o.dims) }
func (o *sumReLUGradOp) Do(in ...G.Value) (G.Value, error) {
	dx := op.Buffer(&o.out, op.Dims(in[0])...)
	o.y, o.a, o.b, o.dx = op.F32(in[0]), op.F32(in[1]), op.F32(in[2]), op.F32(dx)
	o.ew.do(o, len(o.y))
	o.y, o.a, o.b, o.dx = nil, nil, nil, nil
	return dx, nil
}

func (o *sumReLUGradOp) Run(part, _ int) {
	lo, hi := o.ew.span(part)
	vec.SumReLUGrad(o.dx[lo:hi], o.y[lo:hi], o.a[lo:hi], o.b[lo:hi])
}
