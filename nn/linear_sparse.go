package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/op"
	"github.com/shrink-ml/shrink/internal/sparse"
)

// SparseBuilder is implemented by builders that run some pruned layers on
// sparse kernels at inference (the infer package's nets): Sparse is the
// layer's weight in sparse form, or nil to compute it densely. Layer types
// that have sparse kernels (linear) ask for it; a builder without the
// method never gets them.
type SparseBuilder interface {
	Sparse() *sparse.Matrix
}

// sparseOf is b's sparse weight, nil when it has none.
func sparseOf(b Builder) *sparse.Matrix {
	if s, ok := b.(SparseBuilder); ok {
		return s.Sparse()
	}
	return nil
}

// linearSparseOp is y = x Wᵀ + b at inference with W stored as its nonzeros
// (internal/sparse): time in proportion to them. The matrix is shared by
// every net of a model (it is read-only); the op owns its output.
type linearSparseOp struct {
	op.Base
	bias bool
	w    *sparse.Matrix
	out  *tensor.Dense
}

func (l *Linear) buildSparse(b Builder, x *G.Node, w *sparse.Matrix) (*G.Node, error) {
	o := &linearSparseOp{Base: op.NewBase(b.Name() + ".sparse"), w: w}
	if bias := b.Param("bias"); bias != nil {
		o.bias = true
		return G.ApplyOp(o, x, bias)
	}
	return G.ApplyOp(o, x)
}

func (o *linearSparseOp) Arity() int {
	if o.bias {
		return 2
	}
	return 1
}

func (o *linearSparseOp) Type() hmType {
	if o.bias {
		return op.Fn(2, 1, 2)
	}
	return op.Fn(2, 2)
}

func (o *linearSparseOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x := op.ShapeOf(in[0])
	if x[1] != o.w.In() {
		return nil, fmt.Errorf("linear: input has %d features, weight expects %d", x[1], o.w.In())
	}
	return tensor.Shape{x[0], o.w.Out()}, nil
}

func (o *linearSparseOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	rows, k, n := s[0], s[1], o.w.Out()
	y := op.Buffer(&o.out, rows, n)
	var bias []float32
	if o.bias {
		bias = op.F32(in[1])
	}
	o.w.Mul(rows, op.F32(in[0]), k, bias, op.F32(y), n)
	return y, nil
}

func (o *linearSparseOp) DiffWRT(n int) []bool { return make([]bool, n) }
func (o *linearSparseOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%s: sparse inference has no gradient", o.Name())
}
