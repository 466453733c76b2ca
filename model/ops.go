package model

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/gemm"
)

// The ops below are fused float32 kernels for gorgonia graphs. Each op owns its
// output buffer and returns it from every Do, so a training step allocates no
// tensors; a graph is built once per stage and its ops are never shared.

var opIDs atomic.Int64

// opBase is the bookkeeping every op shares. The id keeps gorgonia from merging
// two ops it would otherwise think identical.
type opBase struct {
	id   int64
	name string
}

func newBase(name string) opBase { return opBase{id: opIDs.Add(1), name: name} }

func (o *opBase) ReturnsPtr() bool      { return false }
func (o *opBase) CallsExtern() bool     { return false }
func (o *opBase) OverwritesInput() int  { return -1 }
func (o *opBase) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s#%d", o.name, o.id) }
func (o *opBase) String() string        { return o.name }
func (o *opBase) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

var tA = hm.TypeVariable('a')

func tensorOf(dims int) G.TensorType { return G.TensorType{Dims: dims, Of: tA} }

// buffer returns a float32 tensor of the shape, reusing *buf when it fits.
func buffer(buf **tensor.Dense, shape ...int) *tensor.Dense {
	if *buf == nil || !(*buf).Info().Shape().Eq(tensor.Shape(shape)) {
		*buf = tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
	}
	return *buf
}

// f32 and dims read a tensor's data and shape without allocating (Value.Data
// and Value.Shape box or copy on every call); dims' result must not be changed.
func f32(v G.Value) []float32     { return v.(*tensor.Dense).Float32s() }
func dims(v G.Value) tensor.Shape { return v.(*tensor.Dense).Info().Shape() }

func shapeOf(d G.DimSizer) tensor.Shape { return d.(tensor.Shape) }

// linearOp is y = x W^T + b with W in PyTorch's [out, in] layout.
type linearOp struct {
	opBase
	bias bool
	out  *tensor.Dense
}

func (o *linearOp) Arity() int {
	if o.bias {
		return 3
	}
	return 2
}

func (o *linearOp) Type() hm.Type {
	if o.bias {
		return hm.NewFnType(tensorOf(2), tensorOf(2), tensorOf(1), tensorOf(2))
	}
	return hm.NewFnType(tensorOf(2), tensorOf(2), tensorOf(2))
}

func (o *linearOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, w := shapeOf(in[0]), shapeOf(in[1])
	if x[1] != w[1] {
		return nil, fmt.Errorf("linear: input has %d features, weight expects %d", x[1], w[1])
	}
	return tensor.Shape{x[0], w[0]}, nil
}

func (o *linearOp) Do(in ...G.Value) (G.Value, error) {
	xs, ws := dims(in[0]), dims(in[1])
	batch, inF, outF := xs[0], xs[1], ws[0]
	y := buffer(&o.out, batch, outF)
	yd := f32(y)
	beta := float32(0)
	if o.bias {
		b := f32(in[2])
		for r := 0; r < batch; r++ {
			copy(yd[r*outF:(r+1)*outF], b)
		}
		beta = 1
	}
	gemm.Sgemm(false, true, batch, outF, inF, 1, f32(in[0]), inF, f32(in[1]), inF, beta, yd, outF)
	return y, nil
}

func (o *linearOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

func (o *linearOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&linearGradXOp{opBase: newBase("linearGradX")}, grad, inputs[1])
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(&linearGradWOp{opBase: newBase("linearGradW")}, grad, inputs[0])
	if err != nil {
		return nil, err
	}
	out := G.Nodes{dx, dw}
	if o.bias {
		db, err := G.ApplyOp(&rowSumOp{opBase: newBase("biasGrad")}, grad)
		if err != nil {
			return nil, err
		}
		out = append(out, db)
	}
	return out, nil
}

// linearGradXOp is dx = dy W.
type linearGradXOp struct {
	opBase
	out *tensor.Dense
}

func (o *linearGradXOp) Arity() int { return 2 }
func (o *linearGradXOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(2), tensorOf(2))
}
func (o *linearGradXOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{shapeOf(in[0])[0], shapeOf(in[1])[1]}, nil
}
func (o *linearGradXOp) Do(in ...G.Value) (G.Value, error) {
	dys, ws := dims(in[0]), dims(in[1])
	batch, outF, inF := dys[0], ws[0], ws[1]
	dx := buffer(&o.out, batch, inF)
	gemm.Sgemm(false, false, batch, inF, outF, 1, f32(in[0]), outF, f32(in[1]), inF, 0, f32(dx), inF)
	return dx, nil
}

// linearGradWOp is dW = dy^T x.
type linearGradWOp struct {
	opBase
	out *tensor.Dense
}

func (o *linearGradWOp) Arity() int { return 2 }
func (o *linearGradWOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(2), tensorOf(2))
}
func (o *linearGradWOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{shapeOf(in[0])[1], shapeOf(in[1])[1]}, nil
}
func (o *linearGradWOp) Do(in ...G.Value) (G.Value, error) {
	dys, xs := dims(in[0]), dims(in[1])
	batch, outF, inF := dys[0], dys[1], xs[1]
	dw := buffer(&o.out, outF, inF)
	gemm.Sgemm(true, false, outF, inF, batch, 1, f32(in[0]), outF, f32(in[1]), inF, 0, f32(dw), inF)
	return dw, nil
}

// rowSumOp sums a [rows, cols] gradient over rows: a bias's gradient.
type rowSumOp struct {
	opBase
	out *tensor.Dense
}

func (o *rowSumOp) Arity() int    { return 1 }
func (o *rowSumOp) Type() hm.Type { return hm.NewFnType(tensorOf(2), tensorOf(1)) }
func (o *rowSumOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{shapeOf(in[0])[1]}, nil
}
func (o *rowSumOp) Do(in ...G.Value) (G.Value, error) {
	s := dims(in[0])
	rows, cols := s[0], s[1]
	db := buffer(&o.out, cols)
	d, g := f32(db), f32(in[0])
	clear(d)
	for r := 0; r < rows; r++ {
		row := g[r*cols : (r+1)*cols]
		for j, v := range row {
			d[j] += v
		}
	}
	return db, nil
}

// reluOp is max(x, 0), of any shape.
type reluOp struct {
	opBase
	dims int
	out  *tensor.Dense
}

func (o *reluOp) Arity() int    { return 1 }
func (o *reluOp) Type() hm.Type { return hm.NewFnType(tensorOf(o.dims), tensorOf(o.dims)) }
func (o *reluOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(in[0]).Clone(), nil
}
func (o *reluOp) Do(in ...G.Value) (G.Value, error) {
	y := buffer(&o.out, dims(in[0])...)
	x, yd := f32(in[0]), f32(y)
	for i, v := range x {
		yd[i] = max(v, 0)
	}
	return y, nil
}
func (o *reluOp) DiffWRT(int) []bool { return []bool{true} }
func (o *reluOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&reluGradOp{opBase: newBase("reluGrad"), dims: o.dims}, output, grad)
	return G.Nodes{dx}, err
}

// reluGradOp passes the gradient where the ReLU's output is positive.
type reluGradOp struct {
	opBase
	dims int
	out  *tensor.Dense
}

func (o *reluGradOp) Arity() int { return 2 }
func (o *reluGradOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(o.dims), tensorOf(o.dims), tensorOf(o.dims))
}
func (o *reluGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(in[0]).Clone(), nil
}
func (o *reluGradOp) Do(in ...G.Value) (G.Value, error) {
	dx := buffer(&o.out, dims(in[0])...)
	y, dy, d := f32(in[0]), f32(in[1]), f32(dx)
	dy = dy[:len(y)]
	d = d[:len(y)]
	for i, v := range y {
		// y is +0 or positive: keep dy where its bits are non-zero. Branch-free,
		// since ReLU's zeros fall at random.
		keep := -min(math.Float32bits(v), 1)
		d[i] = math.Float32frombits(math.Float32bits(dy[i]) & keep)
	}
	return dx, nil
}

// channelBiasOp adds a per-channel bias to a [batch, channels, h, w] tensor.
type channelBiasOp struct {
	opBase
	out *tensor.Dense
}

func (o *channelBiasOp) Arity() int { return 2 }
func (o *channelBiasOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(4), tensorOf(1), tensorOf(4))
}
func (o *channelBiasOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(in[0]).Clone(), nil
}
func (o *channelBiasOp) Do(in ...G.Value) (G.Value, error) {
	s := dims(in[0])
	y := buffer(&o.out, s...)
	x, b, yd := f32(in[0]), f32(in[1]), f32(y)
	plane := s[2] * s[3]
	for i := 0; i < s[0]*s[1]; i++ {
		bias := b[i%s[1]]
		for j := i * plane; j < (i+1)*plane; j++ {
			yd[j] = x[j] + bias
		}
	}
	return y, nil
}
func (o *channelBiasOp) DiffWRT(int) []bool { return []bool{true, true} }
func (o *channelBiasOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	db, err := G.ApplyOp(&channelSumOp{opBase: newBase("channelBiasGrad")}, grad)
	return G.Nodes{grad, db}, err
}

// channelSumOp sums a [batch, channels, h, w] gradient per channel.
type channelSumOp struct {
	opBase
	out *tensor.Dense
}

func (o *channelSumOp) Arity() int    { return 1 }
func (o *channelSumOp) Type() hm.Type { return hm.NewFnType(tensorOf(4), tensorOf(1)) }
func (o *channelSumOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{shapeOf(in[0])[1]}, nil
}
func (o *channelSumOp) Do(in ...G.Value) (G.Value, error) {
	s := dims(in[0])
	db := buffer(&o.out, s[1])
	g, d := f32(in[0]), f32(db)
	clear(d)
	plane := s[2] * s[3]
	for i := 0; i < s[0]*s[1]; i++ {
		var sum float32
		for _, v := range g[i*plane : (i+1)*plane] {
			sum += v
		}
		d[i%s[1]] += sum
	}
	return db, nil
}
