package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/op"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "layernorm",
		Summary: "nn.LayerNorm over the last dimension: each vector normalized by its own mean and biased variance, then weight·x̂ + bias; weight, bias [D]",
		New:     func() arch.Layer { return &LayerNorm{Eps: 1e-5} },
	})
}

// LayerNorm is nn.LayerNorm(D) with D the input's last dimension: the same
// in training and eval (no running statistics), and per sample, so padded
// rows of a short batch change nothing.
type LayerNorm struct {
	Eps float64 `json:"eps" exclusiveMinimum:"0" doc:"added to the variance"`
}

func (l *LayerNorm) Shape(in []arch.Shape) (arch.Shape, error) {
	if len(in[0]) == 0 {
		return nil, fmt.Errorf("needs an input with at least one dimension (it normalizes the last)")
	}
	return in[0], nil
}

func (l *LayerNorm) Tensors(in []arch.Shape) []arch.Tensor {
	d := []int{in[0][len(in[0])-1]}
	return []arch.Tensor{{Suffix: "weight", Shape: d, Role: arch.Param}, {Suffix: "bias", Shape: d, Role: arch.Param}}
}

func (l *LayerNorm) MACs([]arch.Shape, arch.Shape) int64 { return 0 }

// Init is reset_parameters: weight 1, bias 0.
func (l *LayerNorm) Init(ts []InitTensor, _ *rand.Rand) {
	for _, t := range ts {
		v := float32(0)
		if t.Suffix == "weight" {
			v = 1
		}
		for i := range t.Data {
			t.Data[i] = v
		}
	}
}

func (l *LayerNorm) Build(b Builder, in []*G.Node) (*G.Node, error) {
	x := in[0]
	st := &lnState{eps: l.Eps}
	return G.ApplyOp(&lnOp{Base: op.NewBase(b.Name()), st: st, dims: x.Dims()}, x, b.Param("weight"), b.Param("bias"))
}

// lnState is what a layer norm's forward leaves for its backward.
type lnState struct {
	eps  float64
	rstd []float32 // per row: 1/sqrt(var + eps)
	xhat []float32 // the normalized input
}

// lnOp normalizes each row (the last dimension) of x and applies weight and
// bias: inputs x, weight, bias.
type lnOp struct {
	op.Base
	st   *lnState
	dims int
	out  *tensor.Dense
}

func (o *lnOp) Arity() int   { return 3 }
func (o *lnOp) Type() hmType { return op.Fn(o.dims, 1, 1, o.dims) }
func (o *lnOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, w := op.ShapeOf(in[0]), op.ShapeOf(in[1])
	if x[len(x)-1] != w[0] {
		return nil, fmt.Errorf("layernorm: input's last dimension is %d, weight has %d", x[len(x)-1], w[0])
	}
	return x.Clone(), nil
}

// rowsOf views a shape as rows of its last dimension.
func rowsOf(s tensor.Shape) (rows, d int) {
	d = s[len(s)-1]
	return s.TotalSize() / d, d
}

// Do follows ATen's LayerNormKernelImpl: per row, scale = rstd and
// shift = -rstd·mean in float, y = (x·scale + shift)·weight + bias. The mean
// and variance are summed in float64.
func (o *lnOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	rows, d := rowsOf(s)
	st := o.st
	y := op.Buffer(&o.out, s...)
	x, yd, w, bias := op.F32(in[0]), op.F32(y), op.F32(in[1]), op.F32(in[2])
	if len(st.rstd) != rows {
		st.rstd = make([]float32, rows)
	}
	if len(st.xhat) != len(x) {
		st.xhat = make([]float32, len(x))
	}
	for r := 0; r < rows; r++ {
		row := x[r*d : (r+1)*d]
		var sum float64
		for _, v := range row {
			sum += float64(v)
		}
		mean := sum / float64(d)
		var sq float64
		for _, v := range row {
			e := float64(v) - mean
			sq += e * e
		}
		rstd := float32(1 / math.Sqrt(sq/float64(d)+st.eps))
		shift := -rstd * float32(mean)
		st.rstd[r] = rstd
		h, out := st.xhat[r*d:(r+1)*d], yd[r*d:(r+1)*d]
		for j, v := range row {
			h[j] = v*rstd + shift
			out[j] = h[j]*w[j] + bias[j]
		}
	}
	return y, nil
}

func (o *lnOp) DiffWRT(n int) []bool { return op.All(n) }
func (o *lnOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g := &lnGradOp{Base: op.NewBase(o.Name() + ".grad"), st: o.st, dims: o.dims}
	dx, err := G.ApplyOp(g, grad, inputs[1])
	if err != nil {
		return nil, err
	}
	out := G.Nodes{dx}
	for i := range 2 {
		d, err := G.ApplyOp(&lnParamGradOp{Base: op.NewBase(fmt.Sprintf("%s.grad%d", o.Name(), i)), g: g, which: i, dims: o.dims}, dx)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// lnGradOp computes the input's gradient from dy and the weight, and along
// the way the weight's (Σ dy·x̂ over rows) and the bias's (Σ dy), which
// lnParamGradOp hands out. Per row, with g = dy·weight:
// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)).
type lnGradOp struct {
	op.Base
	st     *lnState
	dims   int
	dw, db []float64
	out    *tensor.Dense
}

func (o *lnGradOp) Arity() int   { return 2 }
func (o *lnGradOp) Type() hmType { return op.Fn(o.dims, 1, o.dims) }
func (o *lnGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}

func (o *lnGradOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	rows, d := rowsOf(s)
	st := o.st
	dx := op.Buffer(&o.out, s...)
	dy, w, dd := op.F32(in[0]), op.F32(in[1]), op.F32(dx)
	if len(o.dw) != d {
		o.dw, o.db = make([]float64, d), make([]float64, d)
	}
	clear(o.dw)
	clear(o.db)
	for r := 0; r < rows; r++ {
		g, h, out := dy[r*d:(r+1)*d], st.xhat[r*d:(r+1)*d], dd[r*d:(r+1)*d]
		var sum, dot float64
		for j, v := range g {
			gw := float64(v) * float64(w[j])
			sum += gw
			dot += gw * float64(h[j])
			o.dw[j] += float64(v) * float64(h[j])
			o.db[j] += float64(v)
		}
		mean, mdot, rstd := sum/float64(d), dot/float64(d), float64(st.rstd[r])
		for j, v := range g {
			out[j] = float32(rstd * (float64(v)*float64(w[j]) - mean - float64(h[j])*mdot))
		}
	}
	return dx, nil
}

// lnParamGradOp is the weight's (which 0) or the bias's (which 1) gradient,
// computed by the lnGradOp it follows.
type lnParamGradOp struct {
	op.Base
	g     *lnGradOp
	which int
	dims  int
	out   *tensor.Dense
}

func (o *lnParamGradOp) Arity() int   { return 1 }
func (o *lnParamGradOp) Type() hmType { return op.Fn(o.dims, 1) }
func (o *lnParamGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := op.ShapeOf(in[0])
	return tensor.Shape{s[len(s)-1]}, nil
}
func (o *lnParamGradOp) Do(in ...G.Value) (G.Value, error) {
	src := o.g.dw
	if o.which == 1 {
		src = o.g.db
	}
	y := op.Buffer(&o.out, len(src))
	yd := op.F32(y)
	for i, v := range src {
		yd[i] = float32(v)
	}
	return y, nil
}
