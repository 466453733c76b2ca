package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/op"
	"github.com/shrink-ml/shrink/internal/vec"
)

// Fusion is what an inference convolution computes in its output pass, the
// layers after it that read only its output: an eval batch norm, a residual
// add and a ReLU, in that order. Without it each of them is a pass over the
// whole activation tensor in memory (at batch 256 a third of a ResNet-20's
// forward time); in the output pass they run on a chunk of a few images
// while it is still in cache. The arithmetic is the separate layers', value
// for value: the convolution's output (and bias) rounded to float32, then
// x·a + b with the batch norm's own float32 a and b, then + the residual,
// then max(x, 0), so a fused network gives the same bits as the unfused one.
type Fusion struct {
	Norm     *NormEval // an eval batch norm after the convolution; nil: none
	Residual *G.Node   // added after the norm (a residual block's add); nil: none
	ReLU     bool
	// Channels-last layouts between convolutions on integer kernels, which
	// lay their input out channels-last and compute their output that way:
	// a tensor all of whose readers are such convolutions (as their input,
	// or as the residual of their output pass) skips both transposes. The
	// node's shape stays [B, C, H, W]; its values are [B, H, W, C]. Only
	// integer convolutions take these.
	InputChannelsLast, OutputChannelsLast, ResidualChannelsLast bool
	// Codes between integer convolutions on the taps route (Int8Codes,
	// conv2d_int8_taps.go): OutputCodes receives the codes its reader
	// would compute from the output, and with CodesOnly (no other reader)
	// the output's floats are not written; InputCodes holds the input's
	// codes, read instead of the input.
	OutputCodes, InputCodes *Int8Codes
	CodesOnly               bool
}

// NormEval is a batch norm as evaluation computes it: per channel x·a + b,
// a and b from its running statistics and affine parameters (bnOp.Run).
type NormEval struct {
	eps                          float64
	weight, bias, mean, variance []float32 // weight, bias nil: not affine
	a, b                         []float32 // per call
}

// Eval is the batch norm's evaluation form over the builder's tensors,
// for a convolution to apply in its output pass (Fusion).
func (b *BatchNorm) Eval(bd Builder) (*NormEval, error) {
	n := &NormEval{eps: b.Eps, mean: bd.Buffer("running_mean"), variance: bd.Buffer("running_var")}
	if n.mean == nil || n.variance == nil {
		return nil, fmt.Errorf("batch norm %s: no running statistics", bd.Name())
	}
	if b.Affine {
		w, bias := bd.Param("weight"), bd.Param("bias")
		if w == nil || bias == nil || w.Value() == nil || bias.Value() == nil {
			return nil, fmt.Errorf("batch norm %s: weight and bias have no values to fold", bd.Name())
		}
		n.weight, n.bias = op.F32(w.Value()), op.F32(bias.Value())
	}
	return n, nil
}

// coefficients computes a and b as bnOp.Run does in evaluation (float64,
// rounded to float32 once), from the current statistics.
func (n *NormEval) coefficients() {
	c := len(n.mean)
	if len(n.a) != c {
		n.a, n.b = make([]float32, c), make([]float32, c)
	}
	for i := range c {
		mean, invStd := float64(n.mean[i]), 1/math.Sqrt(float64(n.variance[i])+n.eps)
		a, shift := normScaleShift(mean, invStd, n.weight, n.bias, i)
		n.a[i], n.b[i] = float32(a), float32(shift)
	}
}

// epilogue is a Fusion (and the convolution's bias) as the output pass of
// a convolution applies it to y [B, O, plane], one chunk of images at a
// time.
type epilogue struct {
	bias   []float32 // the convolution's own bias; nil: none
	norm   *NormEval
	relu   bool
	res    []float32 // the residual [B, O, plane], set per call; nil: none
	resCL  bool      // the residual is [B, plane, O]
	o      int
	plane  int
	hasRes bool
}

// prepare readies the per-call state: the norm's coefficients and the
// residual's values.
func (e *epilogue) prepare(o, plane int, res []float32) {
	e.o, e.plane, e.res = o, plane, res
	if e.norm != nil {
		e.norm.coefficients()
	}
}

// images applies the epilogue to images [b0, b0+nb) of y.
func (e *epilogue) images(y []float32, b0, nb int) {
	for b := b0; b < b0+nb; b++ {
		for c := 0; c < e.o; c++ {
			at := (b*e.o + c) * e.plane
			e.channel(y[at:at+e.plane], c, at)
		}
	}
}

// channel applies the epilogue to one plane of channel c at offset at of y
// (a plane is small enough to stay in L1 between the two loops). The
// expressions are the separate layers' (the bias add, scaleShift's v*a + b,
// the add, max), so a compiler that fuses v*a + b into one rounding fuses
// both alike.
func (e *epilogue) channel(y []float32, c, at int) {
	switch {
	case e.bias != nil && e.norm != nil:
		bias, a, s := e.bias[c], e.norm.a[c], e.norm.b[c]
		for i, v := range y {
			v += bias
			y[i] = v*a + s
		}
	case e.bias != nil:
		bias := e.bias[c]
		for i, v := range y {
			y[i] = v + bias
		}
	case e.norm != nil:
		vec.ScaleShift(y, y, 1, len(y), len(y), e.norm.a[c], e.norm.b[c])
	}
	switch {
	case e.res != nil && e.resCL:
		// pixel i of channel c of image b is at (b·plane + i)·O + c
		b := at / (e.o * e.plane)
		r := e.res[b*e.plane*e.o+c:]
		for i, v := range y {
			v += r[i*e.o]
			if e.relu {
				v = max(v, 0)
			}
			y[i] = v
		}
	case e.res != nil && e.relu:
		vec.AddReLU(y, e.res[at:at+len(y)])
	case e.res != nil:
		r := e.res[at : at+len(y)]
		for i, v := range y {
			y[i] = v + r[i]
		}
	case e.relu:
		vec.ReLU(y, y)
	}
}

// pixels applies the epilogue (but the bias, which the integer rescale
// adds) to image b's output laid out channels-last, y [plane, O], with the
// same expressions as channel.
func (e *epilogue) pixels(y []float32, b int) {
	o, n := e.o, e.plane
	var r []float32
	if e.res != nil {
		r = e.res[b*n*o : (b+1)*n*o]
	}
	if e.norm == nil && (r == nil || e.resCL) {
		switch {
		case r != nil && e.relu:
			vec.AddReLU(y[:n*o], r)
		case r != nil:
			for i, v := range y[:n*o] {
				y[i] = v + r[i]
			}
		case e.relu:
			vec.ReLU(y[:n*o], y[:n*o])
		}
		return
	}
	for p := 0; p < n; p++ {
		row := y[p*o : (p+1)*o]
		for c, v := range row {
			if e.norm != nil {
				v = v*e.norm.a[c] + e.norm.b[c]
			}
			if r != nil {
				if e.resCL {
					v += r[p*o+c]
				} else {
					v += r[c*n+p]
				}
			}
			if e.relu {
				v = max(v, 0)
			}
			row[c] = v
		}
	}
}

// newEpilogue is the output pass of a convolution built by BuildFused.
func newEpilogue(b Builder, f Fusion) (*epilogue, error) {
	e := &epilogue{norm: f.Norm, relu: f.ReLU, hasRes: f.Residual != nil, resCL: f.ResidualChannelsLast}
	if bias := b.Param("bias"); bias != nil {
		if bias.Value() == nil {
			return nil, fmt.Errorf("conv %s: the bias has no value to fold", b.Name())
		}
		e.bias = op.F32(bias.Value())
	}
	return e, nil
}

// BuildFused adds the convolution for inference with the layers of f
// computed in its output pass (see Fusion): on integer kernels when the
// builder says so (Builder.Int8), else in float. It takes x and, when f has
// one, the residual, a node of the output's shape.
func (c *Conv2d) BuildFused(b Builder, x *G.Node, f Fusion) (*G.Node, error) {
	if len(b.Weights()) != 1 && b.Int8() == nil {
		return nil, fmt.Errorf("conv %s: a factored convolution does not fuse", b.Name())
	}
	e, err := newEpilogue(b, f)
	if err != nil {
		return nil, err
	}
	args := []*G.Node{x}
	if q := b.Int8(); q != nil {
		if len(q.Weights) != 1 || q.Static == nil || len(q.Weights[0].Shape) != 4 {
			return nil, fmt.Errorf("conv %s: integer kernels need one [out, in, kh, kw] weight and static input parameters", b.Name())
		}
		o := newConvInt8Op(b.Name()+".int8", convParams{stride: c.Stride, padding: c.Padding, dilation: c.Dilation, groups: 1}, q.Weights[0], *q.Static)
		// The rescale adds the bias (qgemm.Dequantize, the same rounding).
		o.bias, e.bias = e.bias, nil
		o.epi = e
		o.inCL, o.outCL = f.InputChannelsLast, f.OutputChannelsLast
		if f.OutputCodes != nil || f.InputCodes != nil {
			if o.taps == nil || o.inCL || o.outCL || f.ResidualChannelsLast {
				return nil, fmt.Errorf("conv %s: only stride-1 integer convolutions on the taps route, with [B, C, H, W] tensors, pass codes", b.Name())
			}
			if in := f.InputCodes; in != nil && (in.act != o.act || in.r != o.r || in.kh != o.kh || in.kw != o.kw || in.ph != c.Padding[0] || in.pw != c.Padding[1]) {
				return nil, fmt.Errorf("conv %s: the input's codes were made for another convolution", b.Name())
			}
			o.codesIn, o.codesOut, o.codesOnly = f.InputCodes, f.OutputCodes, f.CodesOnly && f.OutputCodes != nil
		}
		if f.Residual != nil {
			args = append(args, f.Residual)
		}
		return G.ApplyOp(o, args...)
	}
	if f.InputChannelsLast || f.OutputChannelsLast || f.ResidualChannelsLast || f.OutputCodes != nil || f.InputCodes != nil {
		return nil, fmt.Errorf("conv %s: channels-last layouts and codes are for integer kernels only", b.Name())
	}
	o := &convFusedOp{conv2dOp: conv2dOp{Base: op.NewBase(b.Name() + ".fused"), convParams: convParams{stride: c.Stride, padding: c.Padding, dilation: c.Dilation, groups: c.Groups}}, epi: e}
	args = append(args, b.Weights()[0])
	if f.Residual != nil {
		args = append(args, f.Residual)
	}
	return G.ApplyOp(o, args...)
}

// convFusedOp is conv2dOp with an epilogue: inputs x, w and, when the
// epilogue has one, the residual. Inference only.
type convFusedOp struct {
	conv2dOp
	epi    *epilogue
	planar planarForward // where planarFits
}

func (o *convFusedOp) Arity() int {
	if o.epi.hasRes {
		return 3
	}
	return 2
}

func (o *convFusedOp) Type() hmType {
	if o.epi.hasRes {
		return op.Fn(4, 4, 4, 4)
	}
	return op.Fn(4, 4, 4)
}

func (o *convFusedOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := o.conv2dOp.InferShape(in[:2]...)
	if err != nil {
		return nil, err
	}
	if o.epi.hasRes {
		if r := op.ShapeOf(in[2]); !r.Eq(s) {
			return nil, fmt.Errorf("conv: residual %v does not match the output %v", r, s)
		}
	}
	return s, nil
}

func (o *convFusedOp) Do(in ...G.Value) (G.Value, error) {
	d := o.geometry(op.Dims(in[0]), op.Dims(in[1]))
	var res []float32
	if o.epi.hasRes {
		res = op.F32(in[2])
	}
	o.epi.prepare(d.O, d.P, res)
	defer func() { o.epi.res = nil }()
	if d.plain() {
		y, err := o.conv2dOp.Do(in[:2]...)
		if err != nil {
			return nil, err
		}
		o.epi.images(op.F32(y), 0, d.B)
		return y, nil
	}
	y := op.Buffer(&o.out, d.B, d.O, d.OH, d.OW)
	if order, ok := planarFits(d); ok {
		o.planar.run(d, order, op.F32(in[0]), op.F32(in[1]), op.F32(y), o.epi)
		return y, nil
	}
	if d.tapped() {
		o.tall.epi, o.tall.fixedW = o.epi, true
		o.tall.run(d, op.F32(in[0]), op.F32(in[1]), op.F32(y), false)
	} else {
		o.chunked.epi = o.epi
		o.chunked.run(d, op.F32(in[0]), op.F32(in[1]), op.F32(y))
	}
	return y, nil
}

func (o *convFusedOp) DiffWRT(n int) []bool { return make([]bool, n) }
func (o *convFusedOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%s: a fused inference convolution has no gradient", o.Name())
}
