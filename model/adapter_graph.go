package model

import (
	"fmt"
	"math/rand/v2"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/op"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/quant/nf4"
)

// The LoRA branch is built from separate nodes around the layer's own:
// dropout, A and B as the layer types' own linear or conv2d ops (through
// their Build), and a scaled sum. The base path stays exactly the layer's.

// adapter adds base + B(A(dropout(x))) * scaling for the layer's adapter.
func (n *Net) adapter(l *Layer, x, base *G.Node) (*G.Node, error) {
	a := l.Adapter
	name := n.scope + l.Label()
	h := x
	var err error
	if n.Mode == ModeTrain && a.Dropout > 0 {
		if n.rng == nil {
			return nil, fmt.Errorf("adapter dropout needs a random source (NetOptions.Rand)")
		}
		drop := &dropoutOp{Base: op.NewBase(name + ".lora_dropout"), p: a.Dropout, rng: n.rng, dims: h.Dims()}
		if h, err = G.ApplyOp(drop, h); err != nil {
			return nil, err
		}
	}
	var first, second nn.Op
	switch c := l.Config.(type) {
	case *nn.Linear:
		first, second = &nn.Linear{Out: a.Rank()}, &nn.Linear{Out: c.Out}
	case *nn.Conv2d:
		first = &nn.Conv2d{Out: a.Rank(), Kernel: c.Kernel, Stride: c.Stride, Padding: c.Padding, Dilation: nn.Square(1), Groups: 1}
		second = &nn.Conv2d{Out: c.Out, Kernel: nn.Square(1), Stride: nn.Square(1), Dilation: nn.Square(1), Groups: 1}
	default:
		return nil, fmt.Errorf("a %s layer cannot carry a LoRA adapter", l.Type)
	}
	for _, part := range []struct {
		op nn.Op
		w  *Weight
	}{{first, a.A}, {second, a.B}} {
		w := n.param(part.w.Name, part.w.Shape, part.w.Data, nil)
		b := &adapterBuilder{net: n, name: n.scope + part.w.Name, w: w}
		if h, err = part.op.Build(b, []*G.Node{h}); err != nil {
			return nil, err
		}
	}
	return G.ApplyOp(&scaledAddOp{Base: op.NewBase(name + ".lora_add"), s: float32(a.Scaling()), dims: base.Dims()}, base, h)
}

// adapterBuilder hands A or B to a linear or conv2d layer's Build: one
// weight, no bias, nothing else.
type adapterBuilder struct {
	net  *Net
	name string
	w    *G.Node
}

var _ nn.Builder = (*adapterBuilder)(nil)

func (b *adapterBuilder) Graph() *G.ExprGraph     { return b.net.g }
func (b *adapterBuilder) Batch() int              { return b.net.Batch }
func (b *adapterBuilder) Weights() []*G.Node      { return []*G.Node{b.w} }
func (b *adapterBuilder) Param(string) *G.Node    { return nil }
func (b *adapterBuilder) Buffer(string) []float32 { return nil }
func (b *adapterBuilder) Counter(string) *int64   { return nil }
func (b *adapterBuilder) Training() bool          { return b.net.Mode == ModeTrain }
func (b *adapterBuilder) Rows() *int              { return &b.net.rows }
func (b *adapterBuilder) Rand() *rand.Rand        { return b.net.rng }
func (b *adapterBuilder) Name() string            { return b.name }

// The adapter computes in float: no integer kernel, no input quantizer.
func (b *adapterBuilder) Int8() *nn.Int8            { return nil }
func (b *adapterBuilder) ActQuant() nn.ActQuantizer { return nil }

// dropoutOp is nn.Dropout in training: each value is zeroed with
// probability p, the others scaled by 1/(1-p). The draws come from the
// stage's seeded source, so runs repeat (PyTorch's generator differs).
type dropoutOp struct {
	op.Base
	p    float64
	rng  *rand.Rand
	dims int
	mask []float32 // of the last forward, for the gradient
	out  *tensor.Dense
}

func (o *dropoutOp) Arity() int    { return 1 }
func (o *dropoutOp) Type() hm.Type { return op.Fn(o.dims, o.dims) }
func (o *dropoutOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *dropoutOp) Do(in ...G.Value) (G.Value, error) {
	y := op.Buffer(&o.out, op.Dims(in[0])...)
	x, yd := op.F32(in[0]), op.F32(y)
	if len(o.mask) != len(x) {
		o.mask = make([]float32, len(x))
	}
	keep := 1 / float32(1-o.p)
	for i := range o.mask {
		if o.rng.Float64() < o.p {
			o.mask[i] = 0
		} else {
			o.mask[i] = keep
		}
		yd[i] = x[i] * o.mask[i]
	}
	return y, nil
}
func (o *dropoutOp) DiffWRT(int) []bool { return []bool{true} }
func (o *dropoutOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&maskGradOp{Base: op.NewBase(o.Name() + ".grad"), fwd: o}, grad)
	return G.Nodes{dx}, err
}

// maskGradOp multiplies a gradient by the dropout's last mask.
type maskGradOp struct {
	op.Base
	fwd *dropoutOp
	out *tensor.Dense
}

func (o *maskGradOp) Arity() int    { return 1 }
func (o *maskGradOp) Type() hm.Type { return op.Fn(o.fwd.dims, o.fwd.dims) }
func (o *maskGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *maskGradOp) Do(in ...G.Value) (G.Value, error) {
	y := op.Buffer(&o.out, op.Dims(in[0])...)
	g, yd := op.F32(in[0]), op.F32(y)
	for i, m := range o.fwd.mask[:len(g)] {
		yd[i] = g[i] * m
	}
	return y, nil
}

// scaledAddOp is base + branch * s, as PEFT writes it: the product rounded to
// float32, then the sum.
type scaledAddOp struct {
	op.Base
	s    float32
	dims int
	out  *tensor.Dense
}

func (o *scaledAddOp) Arity() int    { return 2 }
func (o *scaledAddOp) Type() hm.Type { return op.Fn(o.dims, o.dims, o.dims) }
func (o *scaledAddOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	a, b := op.ShapeOf(in[0]), op.ShapeOf(in[1])
	if !a.Eq(b) {
		return nil, fmt.Errorf("lora: the adapter's output %v does not match the layer's %v", b, a)
	}
	return a.Clone(), nil
}
func (o *scaledAddOp) Do(in ...G.Value) (G.Value, error) {
	y := op.Buffer(&o.out, op.Dims(in[0])...)
	base, br, yd := op.F32(in[0]), op.F32(in[1]), op.F32(y)
	for i := range yd {
		yd[i] = base[i] + float32(br[i]*o.s) // the conversion keeps the product rounded (no FMA)
	}
	return y, nil
}
func (o *scaledAddOp) DiffWRT(int) []bool { return []bool{true, true} }
func (o *scaledAddOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	db, err := G.ApplyOp(&scaleOp{Base: op.NewBase(o.Name() + ".grad"), s: o.s, dims: o.dims}, grad)
	return G.Nodes{grad, db}, err
}

// scaleOp is x * s.
type scaleOp struct {
	op.Base
	s    float32
	dims int
	out  *tensor.Dense
}

func (o *scaleOp) Arity() int    { return 1 }
func (o *scaleOp) Type() hm.Type { return op.Fn(o.dims, o.dims) }
func (o *scaleOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *scaleOp) Do(in ...G.Value) (G.Value, error) {
	y := op.Buffer(&o.out, op.Dims(in[0])...)
	x, yd := op.F32(in[0]), op.F32(y)
	for i := range yd {
		yd[i] = x[i] * o.s
	}
	return y, nil
}
func (o *scaleOp) DiffWRT(int) []bool { return []bool{true} }
func (o *scaleOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&scaleOp{Base: op.NewBase(o.Name() + ".grad"), s: o.s, dims: o.dims}, grad)
	return G.Nodes{d}, err
}

// nf4Fill is an NF4 weight a training net reads: its codes are dequantized
// into buf (a constant node's backing) before every run, as QLoRA's forward
// dequantizes the frozen base on the fly.
type nf4Fill struct {
	q   *nf4.Weight
	buf []float32
}

// nf4Weight adds an NF4 weight as a constant refilled from its codes.
func (n *Net) nf4Weight(w *Weight) *G.Node {
	buf := make([]float32, len(w.Data))
	n.nf4 = append(n.nf4, nf4Fill{q: w.NF4, buf: buf})
	return n.constant(w.Name, w.Shape, buf)
}

// dequantize refills the NF4 weights' buffers (no allocation).
func (n *Net) dequantize() error {
	for _, f := range n.nf4 {
		if err := f.q.Dequantize(f.buf); err != nil {
			return err
		}
	}
	return nil
}
