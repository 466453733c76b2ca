package nn

import (
	"fmt"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/op"
	"github.com/shrink-ml/shrink/internal/vec"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "add",
		Summary: "a + b (+ ...): a residual connection; from lists the layers added, all of one shape",
		New:     func() arch.Layer { return &Add{} },
		Inputs:  arch.Many,
	})
	arch.RegisterLayer(arch.LayerType{
		Name:    "concat",
		Summary: "torch.cat on the channel dim of images [C, H, W], the feature dim of vectors [F] and sequences [T, F]",
		New:     func() arch.Layer { return &Concat{} },
		Inputs:  arch.Many,
	})
}

// Add sums its inputs.
type Add struct{}

func (*Add) Shape(in []arch.Shape) (arch.Shape, error) {
	for _, s := range in[1:] {
		if !slices.Equal(s, in[0]) {
			return nil, fmt.Errorf("adds tensors of one shape, not %v and %v", in[0], s)
		}
	}
	return in[0], nil
}
func (*Add) Tensors([]arch.Shape) []arch.Tensor  { return nil }
func (*Add) MACs([]arch.Shape, arch.Shape) int64 { return 0 }

func (*Add) Build(b Builder, in []*G.Node) (*G.Node, error) {
	o := &addOp{Base: op.NewBase(b.Name()), n: len(in), dims: in[0].Dims()}
	if f, ok := b.(ReLUFusingBuilder); ok && f.FuseReLU() && len(in) == 2 {
		o.relu = true
	}
	return G.ApplyOp(o, in...)
}

// addOp is the elementwise sum of n tensors of one shape, summed left to right.
type addOp struct {
	op.Base
	n, dims int
	// relu: then max(y, 0), the ReLU layer after a residual add of two
	// (ReLUFusingBuilder), in the sum's pass; its gradient, and the
	// gradient sum that feeds it, in one pass too (SymDiff).
	relu    bool
	out     *tensor.Dense
	ew      elementwise
	y, a, b []float32 // during Do, with relu
}

func (o *addOp) Arity() int { return o.n }
func (o *addOp) Type() hmType {
	d := make([]int, o.n+1)
	for i := range d {
		d[i] = o.dims
	}
	return op.Fn(d...)
}
func (o *addOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *addOp) Do(in ...G.Value) (G.Value, error) {
	y := op.Buffer(&o.out, op.Dims(in[0])...)
	yd := op.F32(y)
	// ((in0 + in1) + in2) + ...: the first sum reads both inputs, with no
	// copy of in0 first.
	if len(in) == 1 {
		copy(yd, op.F32(in[0]))
		return y, nil
	}
	if o.relu {
		o.y, o.a, o.b = yd, op.F32(in[0]), op.F32(in[1])
		o.ew.do(o, len(yd))
		o.y, o.a, o.b = nil, nil, nil
		return y, nil
	}
	vec.Add(yd, op.F32(in[0]), op.F32(in[1]))
	for _, v := range in[2:] {
		vec.Add(yd, yd, op.F32(v))
	}
	return y, nil
}

// Run is part of the fused ReLU's pass (a par.Task).
func (o *addOp) Run(part, _ int) {
	lo, hi := o.ew.span(part)
	vec.SumReLU(o.y[lo:hi], o.a[lo:hi], o.b[lo:hi])
}

func (o *addOp) DiffWRT(n int) []bool { return op.All(n) }
func (o *addOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if o.relu {
		var err error
		if grad, err = reluGradOf(output, grad); err != nil {
			return nil, err
		}
	}
	out := make(G.Nodes, len(inputs))
	for i := range out {
		out[i] = grad
	}
	return out, nil
}

// Concat joins its inputs along the channel or feature dimension.
type Concat struct{}

// concatDim is the sample dimension Concat joins: channels of an image,
// features of a vector or of a sequence's steps.
func concatDim(s arch.Shape) int {
	if len(s) == 2 {
		return 1
	}
	return 0
}

func (*Concat) Shape(in []arch.Shape) (arch.Shape, error) {
	dim := concatDim(in[0])
	out := slices.Clone(in[0])
	for _, s := range in[1:] {
		if len(s) != len(in[0]) {
			return nil, fmt.Errorf("joins tensors of one rank, not %v and %v", in[0], s)
		}
		for i := range s {
			if i != dim && s[i] != in[0][i] {
				return nil, fmt.Errorf("joins tensors that differ only in dimension %d, not %v and %v", dim, in[0], s)
			}
		}
		out[dim] += s[dim]
	}
	return out, nil
}
func (*Concat) Tensors([]arch.Shape) []arch.Tensor  { return nil }
func (*Concat) MACs([]arch.Shape, arch.Shape) int64 { return 0 }

func (*Concat) Build(b Builder, in []*G.Node) (*G.Node, error) {
	dim := 1 + concatDim(arch.Shape(in[0].Shape()[1:]))
	cat := &concatOp{Base: op.NewBase(b.Name()), n: len(in), dims: in[0].Dims(), dim: dim}
	return G.ApplyOp(cat, in...)
}

// concatOp joins n tensors along dim: each is [outer, width_i, inner] when
// viewed around that dimension.
type concatOp struct {
	op.Base
	n, dims, dim int
	out          *tensor.Dense
}

func (o *concatOp) Arity() int { return o.n }
func (o *concatOp) Type() hmType {
	d := make([]int, o.n+1)
	for i := range d {
		d[i] = o.dims
	}
	return op.Fn(d...)
}
func (o *concatOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	out := op.ShapeOf(in[0]).Clone()
	for _, s := range in[1:] {
		out[o.dim] += op.ShapeOf(s)[o.dim]
	}
	return out, nil
}

// around splits a shape into the sizes before, at and after dim.
func around(s tensor.Shape, dim int) (outer, width, inner int) {
	outer, inner = 1, 1
	for _, d := range s[:dim] {
		outer *= d
	}
	for _, d := range s[dim+1:] {
		inner *= d
	}
	return outer, s[dim], inner
}

func (o *concatOp) Do(in ...G.Value) (G.Value, error) {
	shape := op.Dims(in[0]).Clone()
	for _, v := range in[1:] {
		shape[o.dim] += op.Dims(v)[o.dim]
	}
	y := op.Buffer(&o.out, shape...)
	yd := op.F32(y)
	outer, total, inner := around(shape, o.dim)
	at := 0
	for _, v := range in {
		_, w, _ := around(op.Dims(v), o.dim)
		x := op.F32(v)
		for r := 0; r < outer; r++ {
			copy(yd[(r*total+at)*inner:(r*total+at+w)*inner], x[r*w*inner:(r+1)*w*inner])
		}
		at += w
	}
	return y, nil
}
func (o *concatOp) DiffWRT(n int) []bool { return op.All(n) }
func (o *concatOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	out := make(G.Nodes, len(inputs))
	at := 0
	for i, x := range inputs {
		w := x.Shape()[o.dim]
		part := &sliceOp{Base: op.NewBase(fmt.Sprintf("%s.grad%d", o.Name(), i)), dims: o.dims, dim: o.dim, from: at, width: w}
		var err error
		if out[i], err = G.ApplyOp(part, grad); err != nil {
			return nil, err
		}
		at += w
	}
	return out, nil
}

// sliceOp takes [from, from+width) along dim: one input's share of a concat's
// gradient.
type sliceOp struct {
	op.Base
	dims, dim, from, width int
	out                    *tensor.Dense
}

func (o *sliceOp) Arity() int   { return 1 }
func (o *sliceOp) Type() hmType { return op.Fn(o.dims, o.dims) }
func (o *sliceOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := op.ShapeOf(in[0]).Clone()
	s[o.dim] = o.width
	return s, nil
}
func (o *sliceOp) Do(in ...G.Value) (G.Value, error) {
	shape := op.Dims(in[0]).Clone()
	outer, total, inner := around(shape, o.dim)
	shape[o.dim] = o.width
	y := op.Buffer(&o.out, shape...)
	yd, x := op.F32(y), op.F32(in[0])
	for r := 0; r < outer; r++ {
		copy(yd[r*o.width*inner:(r+1)*o.width*inner], x[(r*total+o.from)*inner:(r*total+o.from+o.width)*inner])
	}
	return y, nil
}
