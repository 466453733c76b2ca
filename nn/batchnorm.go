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
		Name:    "batchnorm2d",
		Summary: "nn.BatchNorm2d over images [C, H, W]: weight, bias, running_mean, running_var [C], num_batches_tracked",
		New:     func() arch.Layer { return &BatchNorm{Eps: 1e-5, Momentum: 0.1, Affine: true, dims: 3} },
	})
	arch.RegisterLayer(arch.LayerType{
		Name:    "batchnorm1d",
		Summary: "nn.BatchNorm1d over vectors [C] or sequences of channels [C, L]: weight, bias, running_mean, running_var [C], num_batches_tracked",
		New:     func() arch.Layer { return &BatchNorm{Eps: 1e-5, Momentum: 0.1, Affine: true, dims: 1} },
	})
}

// BatchNorm is nn.BatchNorm1d or nn.BatchNorm2d: training normalizes with the
// batch's statistics (the biased variance) and moves the running ones towards
// them (the unbiased variance, by momentum); eval normalizes with the running
// statistics.
type BatchNorm struct {
	Eps      float64 `json:"eps" exclusiveMinimum:"0" doc:"added to the variance"`
	Momentum float64 `json:"momentum" minimum:"0" maximum:"1" doc:"weight of the batch statistics in the running ones"`
	Affine   bool    `json:"affine" doc:"learn a per-channel weight and bias"`
	dims     int     // 3 for batchnorm2d; 1 for batchnorm1d (which also takes [C, L])
}

func (b *BatchNorm) Shape(in []arch.Shape) (arch.Shape, error) {
	x := in[0]
	switch {
	case b.dims == 3 && len(x) != 3:
		return nil, fmt.Errorf("takes images [channels, height, width], not %v (use batchnorm1d for vectors)", x)
	case b.dims == 1 && len(x) != 1 && len(x) != 2:
		return nil, fmt.Errorf("takes [channels] or [channels, length], not %v (use batchnorm2d for images)", x)
	}
	return x, nil
}

func (b *BatchNorm) Tensors(in []arch.Shape) []arch.Tensor {
	c := []int{in[0][0]}
	var ts []arch.Tensor
	if b.Affine {
		ts = append(ts, arch.Tensor{Suffix: "weight", Shape: c, Role: arch.Param}, arch.Tensor{Suffix: "bias", Shape: c, Role: arch.Param})
	}
	return append(ts,
		arch.Tensor{Suffix: "running_mean", Shape: c, Role: arch.Buffer},
		arch.Tensor{Suffix: "running_var", Shape: c, Role: arch.Buffer},
		arch.Tensor{Suffix: "num_batches_tracked", Shape: []int{}, Role: arch.Buffer, Int64: true})
}

func (b *BatchNorm) MACs([]arch.Shape, arch.Shape) int64 { return 0 }

// Init is reset_parameters: weight 1, bias 0, running_mean 0, running_var 1.
func (b *BatchNorm) Init(ts []InitTensor, _ *rand.Rand) {
	for _, t := range ts {
		v := float32(0)
		if t.Suffix == "weight" || t.Suffix == "running_var" {
			v = 1
		}
		for i := range t.Data {
			t.Data[i] = v
		}
	}
}

// StatsFreezer is implemented by Builders that can freeze a batch norm's
// statistics partway through training, as torch.ao's freeze_bn_stats does in
// quantization-aware training: while *FrozenStats() is true, a training batch
// norm normalizes with its running statistics and leaves them (and
// num_batches_tracked) alone, exactly as in eval, while its weight and bias
// still learn. nil: never frozen.
type StatsFreezer interface {
	FrozenStats() *bool
}

func (b *BatchNorm) Build(bd Builder, in []*G.Node) (*G.Node, error) {
	x := in[0]
	st := &bnState{eps: b.Eps, momentum: b.Momentum, rows: bd.Rows(), training: bd.Training(),
		mean: bd.Buffer("running_mean"), variance: bd.Buffer("running_var"), tracked: bd.Counter("num_batches_tracked")}
	if f, ok := bd.(StatsFreezer); ok && st.training {
		st.frozen = f.FrozenStats()
	}
	args := []*G.Node{x}
	if b.Affine {
		args = append(args, bd.Param("weight"), bd.Param("bias"))
	}
	return G.ApplyOp(&bnOp{Base: op.NewBase(bd.Name()), st: st, dims: x.Dims(), affine: b.Affine}, args...)
}

// bnState is what a batch norm's forward leaves for its backward.
type bnState struct {
	eps, momentum float64
	rows          *int
	training      bool
	frozen        *bool     // see StatsFreezer
	mean          []float32 // running statistics, updated in place while training
	variance      []float32
	tracked       *int64
	// of the last forward, per channel: the mean and 1/sqrt(var + eps) it
	// normalized with (the batch's in training, the running ones in eval)
	batchMean, invStd []float64
	xhat              []float32 // the normalized input, for the gradients
}

// batchStats reports whether the batch's statistics normalize (and update the
// running ones): training, unless frozen.
func (st *bnState) batchStats() bool { return st.training && (st.frozen == nil || !*st.frozen) }

// bnOp normalizes x [B, C, S...] per channel and applies the affine weight
// and bias: inputs x (and weight, bias when affine).
type bnOp struct {
	op.Base
	st     *bnState
	dims   int
	affine bool
	out    *tensor.Dense
}

func (o *bnOp) Arity() int {
	if o.affine {
		return 3
	}
	return 1
}
func (o *bnOp) Type() hmType {
	if o.affine {
		return op.Fn(o.dims, 1, 1, o.dims)
	}
	return op.Fn(o.dims, o.dims)
}
func (o *bnOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}

// channels views a [B, C, ...] shape as batch, channels and the values per
// channel of one sample.
func channels(s tensor.Shape) (batch, c, per int) {
	return s[0], s[1], s.TotalSize() / (s[0] * s[1])
}

func (o *bnOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	B, C, S := channels(s)
	st := o.st
	y := op.Buffer(&o.out, s...)
	x, yd := op.F32(in[0]), op.F32(y)
	if len(st.batchMean) != C {
		st.batchMean, st.invStd = make([]float64, C), make([]float64, C)
	}
	if len(st.xhat) != len(x) {
		st.xhat = make([]float32, len(x))
	}
	rows := B
	if st.rows != nil && *st.rows > 0 && *st.rows < B {
		rows = *st.rows
	}
	if st.batchStats() {
		n := rows * S
		if n < 2 {
			return nil, fmt.Errorf("batch norm %s: training needs more than one value per channel, got %d (a batch of one sample?)", o.Name(), n)
		}
		for c := 0; c < C; c++ {
			var sum float64
			for b := 0; b < rows; b++ {
				for _, v := range x[(b*C+c)*S : (b*C+c+1)*S] {
					sum += float64(v)
				}
			}
			mean := sum / float64(n)
			var sq float64
			for b := 0; b < rows; b++ {
				for _, v := range x[(b*C+c)*S : (b*C+c+1)*S] {
					d := float64(v) - mean
					sq += d * d
				}
			}
			variance := sq / float64(n)
			st.batchMean[c], st.invStd[c] = mean, 1/math.Sqrt(variance+st.eps)
			m := st.momentum
			st.mean[c] = float32(m*mean + (1-m)*float64(st.mean[c]))
			st.variance[c] = float32(m*variance*float64(n)/float64(n-1) + (1-m)*float64(st.variance[c]))
		}
		if st.tracked != nil {
			*st.tracked++
		}
	} else {
		for c := 0; c < C; c++ {
			st.batchMean[c], st.invStd[c] = float64(st.mean[c]), 1/math.Sqrt(float64(st.variance[c])+st.eps)
		}
	}
	var w, bias []float32
	if o.affine {
		w, bias = op.F32(in[1]), op.F32(in[2])
	}
	for b := 0; b < B; b++ {
		for c := 0; c < C; c++ {
			mean, inv := float32(st.batchMean[c]), float32(st.invStd[c])
			scale, shift := float32(1), float32(0)
			if o.affine {
				scale, shift = w[c], bias[c]
			}
			at := (b*C + c) * S
			for i, v := range x[at : at+S] {
				h := (v - mean) * inv
				st.xhat[at+i] = h
				yd[at+i] = h*scale + shift
			}
		}
	}
	return y, nil
}

func (o *bnOp) DiffWRT(n int) []bool { return op.All(n) }
func (o *bnOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g := &bnGradOp{Base: op.NewBase(o.Name() + ".grad"), st: o.st, dims: o.dims, affine: o.affine}
	args := G.Nodes{grad}
	if o.affine {
		args = append(args, inputs[1])
	}
	dx, err := G.ApplyOp(g, args...)
	if err != nil {
		return nil, err
	}
	out := G.Nodes{dx}
	if o.affine {
		for i := range 2 {
			d, err := G.ApplyOp(&bnParamGradOp{Base: op.NewBase(fmt.Sprintf("%s.grad%d", o.Name(), i)), g: g, which: i, dims: o.dims}, dx)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// bnGradOp computes the input's gradient from dy (and the weight), and along
// the way the weight's and bias's, which bnParamGradOp hands out. In training
// the statistics depend on the input too:
// dx = invstd/n · (n·dxhat − Σdxhat − xhat·Σ(dxhat·xhat)) over the real rows
// (padding rows get none); in eval, dx = dxhat·invstd.
type bnGradOp struct {
	op.Base
	st         *bnState
	dims       int
	affine     bool
	dw, db     []float32
	sums, dots []float64
	out        *tensor.Dense
}

func (o *bnGradOp) Arity() int {
	if o.affine {
		return 2
	}
	return 1
}
func (o *bnGradOp) Type() hmType {
	if o.affine {
		return op.Fn(o.dims, 1, o.dims)
	}
	return op.Fn(o.dims, o.dims)
}
func (o *bnGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}

func (o *bnGradOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	B, C, S := channels(s)
	st := o.st
	dx := op.Buffer(&o.out, s...)
	dy, d, xhat := op.F32(in[0]), op.F32(dx), st.xhat
	if len(o.dw) != C {
		o.dw, o.db = make([]float32, C), make([]float32, C)
		o.sums, o.dots = make([]float64, C), make([]float64, C)
	}
	rows := B
	if st.batchStats() && st.rows != nil && *st.rows > 0 && *st.rows < B {
		rows = *st.rows
	}
	var w []float32
	if o.affine {
		w = op.F32(in[1])
	}
	for c := 0; c < C; c++ {
		var sdy, sdyx float64
		for b := 0; b < rows; b++ {
			at := (b*C + c) * S
			for i, g := range dy[at : at+S] {
				sdy += float64(g)
				sdyx += float64(g) * float64(xhat[at+i])
			}
		}
		o.db[c], o.dw[c] = float32(sdy), float32(sdyx)
		scale := 1.0
		if o.affine {
			scale = float64(w[c])
		}
		// Σdxhat and Σ(dxhat·xhat) are the sums above times the weight.
		o.sums[c], o.dots[c] = sdy*scale, sdyx*scale
	}
	clear(d)
	for b := 0; b < rows; b++ {
		for c := 0; c < C; c++ {
			scale := float32(1)
			if o.affine {
				scale = w[c]
			}
			inv := st.invStd[c]
			at := (b*C + c) * S
			if !st.batchStats() {
				k := float32(float64(scale) * inv)
				for i, g := range dy[at : at+S] {
					d[at+i] = g * k
				}
				continue
			}
			n := float64(rows * S)
			mean, dot := o.sums[c]/n, o.dots[c]/n
			for i, g := range dy[at : at+S] {
				d[at+i] = float32(inv * (float64(g)*float64(scale) - mean - float64(xhat[at+i])*dot))
			}
		}
	}
	return dx, nil
}

// bnParamGradOp is the weight's (which 0) or the bias's (which 1) gradient,
// computed by the bnGradOp it follows.
type bnParamGradOp struct {
	op.Base
	g     *bnGradOp
	which int
	dims  int
	out   *tensor.Dense
}

func (o *bnParamGradOp) Arity() int   { return 1 }
func (o *bnParamGradOp) Type() hmType { return op.Fn(o.dims, 1) }
func (o *bnParamGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.ShapeOf(in[0])[1]}, nil
}
func (o *bnParamGradOp) Do(in ...G.Value) (G.Value, error) {
	src := o.g.dw
	if o.which == 1 {
		src = o.g.db
	}
	y := op.Buffer(&o.out, len(src))
	copy(op.F32(y), src)
	return y, nil
}
