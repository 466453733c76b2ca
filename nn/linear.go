package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/op"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "linear",
		Summary: "nn.Linear: y = x W^T + b over the last dimension; weight [out, in], bias [out]",
		New:     func() arch.Layer { return &Linear{Bias: true} },
	})
}

// Linear is nn.Linear, applied to the last dimension of its input.
type Linear struct {
	Out  int  `json:"out" minimum:"1" doc:"output features"`
	Bias bool `json:"bias" doc:"add a learnable bias"`
}

// Validate requires out.
func (l *Linear) Validate() error {
	if l.Out == 0 {
		return config.Errorf("out", "missing: the number of output features")
	}
	return nil
}

func (l *Linear) Shape(in []arch.Shape) (arch.Shape, error) {
	x := in[0]
	if len(x) == 0 {
		return nil, fmt.Errorf("needs an input with at least one dimension")
	}
	out := append(arch.Shape{}, x...)
	out[len(out)-1] = l.Out
	return out, nil
}

func (l *Linear) Tensors(in []arch.Shape) []arch.Tensor {
	x := in[0]
	ts := []arch.Tensor{{Suffix: "weight", Shape: []int{l.Out, x[len(x)-1]}, Role: arch.Weight}}
	if l.Bias {
		ts = append(ts, arch.Tensor{Suffix: "bias", Shape: []int{l.Out}, Role: arch.Param})
	}
	return ts
}

func (l *Linear) MACs(in []arch.Shape, out arch.Shape) int64 {
	return int64(in[0].Size()) * int64(l.Out)
}

func (l *Linear) Caps() arch.Caps {
	return arch.Caps{Static: true, Dynamic: true, QAT: true, Factor: true, Adapter: true, Channels: true}
}

// Init is nn.Linear's reset_parameters: kaiming_uniform(a=sqrt(5)) on the
// weight, which is U(±1/sqrt(fan_in)), and the bias at the same bound. A
// factored layer's bias takes its last factor's fan-in, as PyTorch's
// Linear(k, out) would.
func (l *Linear) Init(ts []InitTensor, rng *rand.Rand) { initFanIn(ts, rng) }

// initFanIn is the default init of nn.Linear and nn.Conv2d.
func initFanIn(ts []InitTensor, rng *rand.Rand) {
	var bound float32
	for _, t := range ts {
		if t.Suffix == "bias" || t.Suffix == "1.bias" {
			Uniform(t.Data, bound, rng)
			continue
		}
		bound = float32(1 / math.Sqrt(float64(fanIn(t.Shape))))
		Uniform(t.Data, bound, rng)
	}
}

func (l *Linear) Build(b Builder, in []*G.Node) (*G.Node, error) {
	x := in[0]
	shape := x.Shape()
	build := l.build2
	if q := b.Int8(); q != nil {
		build = func(b Builder, x *G.Node) (*G.Node, error) { return l.buildInt8(b, x, q) }
	} else if w := sparseOf(b); w != nil {
		build = func(b Builder, x *G.Node) (*G.Node, error) { return l.buildSparse(b, x, w) }
	}
	if len(shape) > 2 {
		// [B, T, F] -> [B*T, F] and back: a view, no copy.
		rows := shape.TotalSize() / shape[len(shape)-1]
		flat, err := Reshape(b.Name()+".rows", x, tensor.Shape{rows, shape[len(shape)-1]})
		if err != nil {
			return nil, err
		}
		y, err := build(b, flat)
		if err != nil {
			return nil, err
		}
		outShape := shape.Clone()
		outShape[len(outShape)-1] = l.Out
		return Reshape(b.Name()+".unrows", y, outShape)
	}
	return build(b, x)
}

// build2 is the layer on a [rows, in] matrix: one product, or two for a
// factored layer (x A^T then (x A^T) B^T + b).
func (l *Linear) build2(b Builder, x *G.Node) (*G.Node, error) {
	ws := b.Weights()
	var err error
	if len(ws) == 2 {
		if x, err = G.ApplyOp(&linearOp{Base: op.NewBase(b.Name() + ".0")}, x, ws[0]); err != nil {
			return nil, err
		}
		ws = ws[1:]
	}
	if bias := b.Param("bias"); bias != nil {
		return G.ApplyOp(&linearOp{Base: op.NewBase(b.Name()), bias: true}, x, ws[0], bias)
	}
	return G.ApplyOp(&linearOp{Base: op.NewBase(b.Name())}, x, ws[0])
}

// linearOp is y = x W^T + b with W in PyTorch's [out, in] layout.
type linearOp struct {
	op.Base
	bias bool
	out  *tensor.Dense
}

func (o *linearOp) Arity() int {
	if o.bias {
		return 3
	}
	return 2
}

func (o *linearOp) Type() hmType {
	if o.bias {
		return op.Fn(2, 2, 1, 2)
	}
	return op.Fn(2, 2, 2)
}

func (o *linearOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, w := op.ShapeOf(in[0]), op.ShapeOf(in[1])
	if x[1] != w[1] {
		return nil, fmt.Errorf("linear: input has %d features, weight expects %d", x[1], w[1])
	}
	return tensor.Shape{x[0], w[0]}, nil
}

func (o *linearOp) Do(in ...G.Value) (G.Value, error) {
	xs, ws := op.Dims(in[0]), op.Dims(in[1])
	batch, inF, outF := xs[0], xs[1], ws[0]
	y := op.Buffer(&o.out, batch, outF)
	yd := op.F32(y)
	beta := float32(0)
	if o.bias {
		b := op.F32(in[2])
		for r := 0; r < batch; r++ {
			copy(yd[r*outF:(r+1)*outF], b)
		}
		beta = 1
	}
	gemm.Sgemm(false, true, batch, outF, inF, 1, op.F32(in[0]), inF, op.F32(in[1]), inF, beta, yd, outF)
	return y, nil
}

func (o *linearOp) DiffWRT(n int) []bool { return op.All(n) }

func (o *linearOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&linearGradXOp{Base: op.NewBase("linearGradX")}, grad, inputs[1])
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(&linearGradWOp{Base: op.NewBase("linearGradW")}, grad, inputs[0])
	if err != nil {
		return nil, err
	}
	out := G.Nodes{dx, dw}
	if o.bias {
		db, err := G.ApplyOp(&rowSumOp{Base: op.NewBase("biasGrad")}, grad)
		if err != nil {
			return nil, err
		}
		out = append(out, db)
	}
	return out, nil
}

// linearGradXOp is dx = dy W.
type linearGradXOp struct {
	op.Base
	out *tensor.Dense
}

func (o *linearGradXOp) Arity() int   { return 2 }
func (o *linearGradXOp) Type() hmType { return op.Fn(2, 2, 2) }
func (o *linearGradXOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.ShapeOf(in[0])[0], op.ShapeOf(in[1])[1]}, nil
}
func (o *linearGradXOp) Do(in ...G.Value) (G.Value, error) {
	dys, ws := op.Dims(in[0]), op.Dims(in[1])
	batch, outF, inF := dys[0], ws[0], ws[1]
	dx := op.Buffer(&o.out, batch, inF)
	gemm.Sgemm(false, false, batch, inF, outF, 1, op.F32(in[0]), outF, op.F32(in[1]), inF, 0, op.F32(dx), inF)
	return dx, nil
}

// linearGradWOp is dW = dy^T x.
type linearGradWOp struct {
	op.Base
	out *tensor.Dense
}

func (o *linearGradWOp) Arity() int   { return 2 }
func (o *linearGradWOp) Type() hmType { return op.Fn(2, 2, 2) }
func (o *linearGradWOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.ShapeOf(in[0])[1], op.ShapeOf(in[1])[1]}, nil
}
func (o *linearGradWOp) Do(in ...G.Value) (G.Value, error) {
	dys, xs := op.Dims(in[0]), op.Dims(in[1])
	batch, outF, inF := dys[0], dys[1], xs[1]
	dw := op.Buffer(&o.out, outF, inF)
	gemm.Sgemm(true, false, outF, inF, batch, 1, op.F32(in[0]), outF, op.F32(in[1]), inF, 0, op.F32(dw), inF)
	return dw, nil
}

// rowSumOp sums a gradient over every dimension but the last: a bias's
// gradient from a linear layer's [rows, cols] or an LSTM's [N, T, 4H].
type rowSumOp struct {
	op.Base
	rank int // of the gradient: 2 when 0
	out  *tensor.Dense
}

func (o *rowSumOp) Arity() int { return 1 }
func (o *rowSumOp) Type() hmType {
	return op.Fn(max(o.rank, 2), 1)
}
func (o *rowSumOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := op.ShapeOf(in[0])
	return tensor.Shape{s[len(s)-1]}, nil
}
func (o *rowSumOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	cols := s[len(s)-1]
	db := op.Buffer(&o.out, cols)
	d, g := op.F32(db), op.F32(in[0])
	clear(d)
	for r := 0; r < len(g)/cols; r++ {
		for j, v := range g[r*cols : (r+1)*cols] {
			d[j] += v
		}
	}
	return db, nil
}

// FactorShapes: [rank, in] then [out, rank], a Linear(in, rank) then a
// Linear(rank, out).
func (l *Linear) FactorShapes(in []arch.Shape, rank int) (first, second []int) {
	return []int{rank, in[0][len(in[0])-1]}, []int{l.Out, rank}
}
