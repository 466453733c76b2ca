package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/op"
	"github.com/shrink-ml/shrink/internal/par"
	"github.com/shrink-ml/shrink/internal/vec"
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

// ReLUFusingBuilder is implemented by Builders that let a batch norm apply the
// ReLU reading its output, when that ReLU is its output's only reader: the
// relu layer then adds no op of its own (ReLU.Build returns the batch
// norm's node). The bits are those of the two ops in turn; each direction
// saves a pass over the activations.
type ReLUFusingBuilder interface {
	FuseReLU() bool
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
	o := &bnOp{Base: op.NewBase(bd.Name()), st: st, dims: x.Dims(), affine: b.Affine}
	if f, ok := bd.(ReLUFusingBuilder); ok && f.FuseReLU() {
		o.relu = true
	}
	return G.ApplyOp(o, args...)
}

// bnState is what a batch norm's forward leaves for its backward.
type bnState struct {
	eps, momentum float64
	rows          *int
	training      bool
	mean          []float32 // running statistics, updated in place while training
	variance      []float32
	tracked       *int64
	frozen        *bool // see StatsFreezer
	// of the last forward, per channel: the mean and 1/sqrt(var + eps) it
	// normalized with (the batch's in training, the running ones in eval)
	batchMean, invStd []float64
}

// batchStats reports whether the batch's statistics normalize (and update the
// running ones): training, unless frozen.
func (st *bnState) batchStats() bool { return st.training && (st.frozen == nil || !*st.frozen) }

// realRows is how many leading samples of a batch of b are real: padding
// rows of a short batch take no part in the statistics.
func (st *bnState) realRows(b int) int {
	if st.batchStats() && st.rows != nil && *st.rows > 0 && *st.rows < b {
		return *st.rows
	}
	return b
}

// bnOp normalizes x [B, C, S...] per channel and applies the affine weight
// and bias: inputs x (and weight, bias when affine).
//
// Like PyTorch's CPU kernel, it folds the normalization and the affine map
// into y = x·a + b per channel (a = weight/sqrt(var + eps), b = bias -
// mean·a), and sums the statistics in float64. Channels are independent,
// so they are spread over gemm.Threads() goroutines; each channel's sums
// run in a fixed order whoever computes them.
type bnOp struct {
	op.Base
	st     *bnState
	dims   int
	affine bool
	relu   bool // max(y, 0) too: see ReLUFusingBuilder
	out    *tensor.Dense
	// per call, for Run
	x, y, w, bias []float32
	shape         [3]int // batch, channels, values per channel of one sample
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
	if len(st.batchMean) != C {
		st.batchMean, st.invStd = make([]float64, C), make([]float64, C)
	}
	if st.batchStats() {
		if n := st.realRows(B) * S; n < 2 {
			return nil, fmt.Errorf("batch norm %s: training needs more than one value per channel, got %d: a batch of one sample, which PyTorch refuses too; "+
				"choose a batch_size above 1 that leaves no last batch of one row (the training rows modulo batch_size must not be 1)", o.Name(), n)
		}
	}
	o.x, o.y, o.shape = op.F32(in[0]), op.F32(y), [3]int{B, C, S}
	if o.affine {
		o.w, o.bias = op.F32(in[1]), op.F32(in[2])
	}
	par.Do(o, C, min(gemm.Threads(), C, max(1, B*C*S/minParallel)))
	o.x, o.y, o.w, o.bias = nil, nil, nil, nil
	if st.batchStats() && st.tracked != nil {
		*st.tracked++
	}
	return y, nil
}

// minParallel is the fewest values worth a second goroutine (waking one
// costs tens of microseconds).
const minParallel = 1 << 16

// Run normalizes channel c: its statistics (in training), then every
// sample's values of it.
func (o *bnOp) Run(c, _ int) {
	B, C, S := o.shape[0], o.shape[1], o.shape[2]
	st := o.st
	if st.batchStats() {
		rows := st.realRows(B)
		n := rows * S
		x := o.x[c*S:]
		mean := vec.BNSum(x, rows, S, C*S) / float64(n)
		variance := vec.BNSqDev(x, rows, S, C*S, mean) / float64(n)
		st.batchMean[c], st.invStd[c] = mean, 1/math.Sqrt(variance+st.eps)
		m := st.momentum
		st.mean[c] = float32(m*mean + (1-m)*float64(st.mean[c]))
		st.variance[c] = float32(m*variance*float64(n)/float64(n-1) + (1-m)*float64(st.variance[c]))
	} else {
		st.batchMean[c], st.invStd[c] = float64(st.mean[c]), 1/math.Sqrt(float64(st.variance[c])+st.eps)
	}
	a, shift := normScaleShift(st.batchMean[c], st.invStd[c], o.w, o.bias, c)
	if o.relu {
		vec.ScaleShiftReLU(o.y[c*S:], o.x[c*S:], B, S, C*S, float32(a), float32(shift))
		return
	}
	vec.ScaleShift(o.y[c*S:], o.x[c*S:], B, S, C*S, float32(a), float32(shift))
}

// normScaleShift is channel c's y = a·x + shift, in float64: x - mean
// times invStd, then times the affine weight plus its bias (w nil: not
// affine). bnOp and NormEval (a convolution's fused batch norm) share it,
// so both give the same bits.
func normScaleShift(mean, invStd float64, w, bias []float32, c int) (a, shift float64) {
	if w == nil {
		return invStd, -mean * invStd
	}
	return invStd * float64(w[c]), float64(bias[c]) - mean*invStd*float64(w[c])
}

func (o *bnOp) DiffWRT(n int) []bool { return op.All(n) }
func (o *bnOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g := &bnGradOp{Base: op.NewBase(o.Name() + ".grad"), st: o.st, dims: o.dims, affine: o.affine, relu: o.relu}
	args := G.Nodes{grad, inputs[0]}
	if o.affine {
		args = append(args, inputs[1])
	}
	if o.relu {
		args = append(args, output)
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

// bnGradOp computes the input's gradient from dy, x (and the weight), and
// along the way the weight's and bias's, which bnParamGradOp hands out. In
// training the statistics depend on the input too; as PyTorch's CPU kernel
// computes it, with x̂ = (x - mean)·invstd over the real rows (padding rows
// get none):
//
//	dx = (dy - mean(dy) - (x - mean)·invstd²·mean(dy·(x - mean)))·invstd·weight
//
// In eval, dx = dy·invstd·weight.
//
// With a fused ReLU (relu), its last input is the op's output y, and dy is
// the gradient after the ReLU: it is first kept only where y is non-zero.
type bnGradOp struct {
	op.Base
	st     *bnState
	dims   int
	affine bool
	relu   bool
	dw, db []float32
	out    *tensor.Dense
	// per call, for Run
	dy, x, w, y, dx []float32
	shape           [3]int
}

func (o *bnGradOp) Arity() int {
	n := 2
	if o.affine {
		n++
	}
	if o.relu {
		n++
	}
	return n
}
func (o *bnGradOp) Type() hmType {
	ts := []int{o.dims, o.dims}
	if o.affine {
		ts = append(ts, 1)
	}
	if o.relu {
		ts = append(ts, o.dims)
	}
	return op.Fn(append(ts, o.dims)...)
}
func (o *bnGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}

func (o *bnGradOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	B, C, S := channels(s)
	dx := op.Buffer(&o.out, s...)
	if len(o.dw) != C {
		o.dw, o.db = make([]float32, C), make([]float32, C)
	}
	o.dy, o.x, o.dx, o.shape = op.F32(in[0]), op.F32(in[1]), op.F32(dx), [3]int{B, C, S}
	if o.affine {
		o.w = op.F32(in[2])
	}
	if o.relu {
		o.y = op.F32(in[len(in)-1])
	}
	par.Do(o, C, min(gemm.Threads(), C, max(1, B*C*S/minParallel)))
	o.dy, o.x, o.dx, o.w, o.y = nil, nil, nil, nil, nil
	return dx, nil
}

// Run computes channel c's gradients.
func (o *bnGradOp) Run(c, _ int) {
	B, C, S := o.shape[0], o.shape[1], o.shape[2]
	st := o.st
	rows := st.realRows(B)
	mean, inv := st.batchMean[c], st.invStd[c]
	dy, x, dx := o.dy[c*S:], o.x[c*S:], o.dx[c*S:]
	var sdy, sdyx float64 // Σdy and Σdy·(x - mean)
	if o.relu {
		sdy, sdyx = vec.BNDotDevReLU(dy, o.y[c*S:], x, rows, S, C*S, mean)
	} else {
		sdy, sdyx = vec.BNDotDev(dy, x, rows, S, C*S, mean)
	}
	o.db[c], o.dw[c] = float32(sdy), float32(sdyx*inv)
	scale := inv
	if o.affine {
		scale *= float64(o.w[c])
	}
	if !st.batchStats() {
		if o.relu {
			for b := 0; b < B; b++ {
				at := (b*C + c) * S
				vec.ReLUGrad(o.dx[at:at+S], o.y[at:at+S], o.dy[at:at+S])
			}
			dy = dx
		}
		vec.ScaleShift(dx, dy, B, S, C*S, float32(scale), 0)
		return
	}
	n := float64(rows * S)
	gm, mf, k, sf := float32(sdy/n), float32(mean), float32(sdyx/n*inv*inv), float32(scale)
	if o.relu {
		vec.BNGradInReLU(dx, dy, o.y[c*S:], x, rows, S, C*S, gm, mf, k, sf)
	} else {
		vec.BNGradIn(dx, dy, x, rows, S, C*S, gm, mf, k, sf)
	}
	for b := rows; b < B; b++ {
		clear(o.dx[(b*C+c)*S : (b*C+c+1)*S])
	}
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
