package onnxexport

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/onnx"
	"github.com/shrink-ml/shrink/quant"
)

// qweight is a quantized weight's integers and parameters, one scale and
// zero point per output channel (perChannel) or for the tensor.
type qweight struct {
	q          []int32
	scale      []float32
	zp         []int32
	spec       quant.Spec
	perChannel bool
}

// quantized recovers the integers shrink stores for w (as model.ToFile
// does: its parameters, or observed afresh when it has none) and folds a
// batch norm's multipliers into the scales, which makes them per channel.
func quantized(l *model.Layer, w *model.Weight, fold *bnFold) qweight {
	spec := *l.Quant
	params := w.QParams
	if params == nil {
		p := spec.ParamsFor(w.Data, w.Shape)
		params = &p
	}
	q := make([]int32, len(w.Data))
	spec.Quantize(w.Data, *params, q)
	qw := qweight{q: q, scale: slices.Clone(params.Scale), zp: slices.Clone(params.ZeroPoint), spec: spec,
		perChannel: spec.Granularity == quant.PerChannel}
	if fold != nil {
		out := w.Shape[0]
		if len(qw.scale) == 1 && out > 1 {
			qw.scale = repeat(qw.scale[0], out)
			qw.zp = repeat(qw.zp[0], out)
		}
		for c := range qw.scale {
			qw.scale[c] = float32(float64(qw.scale[c]) * fold.mul[c])
		}
		qw.perChannel = true
	}
	return qw
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// prefix is the module a weight hangs from: fc1 for fc1.weight, fc1.0 for
// fc1.0.weight.
func prefix(weight string) string { return strings.TrimSuffix(weight, ".weight") }

// transpose turns a row-major [rows, cols] matrix into [cols, rows].
func transpose[T any](v []T, rows, cols int) []T {
	out := make([]T, len(v))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			out[c*rows+r] = v[r*cols+c]
		}
	}
	return out
}

// weight returns the value an op reads for weight w: a float initializer,
// or a quantized one through DequantizeLinear. transposed stores a
// [out, in] weight as [in, out] for MatMul.
func (b *builder) weight(l *model.Layer, w *model.Weight, transposed bool, fold *bnFold) (string, error) {
	dims := int64s(w.Shape)
	rows, cols := w.Shape[0], len(w.Data)/w.Shape[0]
	if transposed {
		dims = []int64{int64(cols), int64(rows)}
	}
	if l.Quant == nil {
		data := w.Data
		if transposed {
			data = transpose(data, rows, cols)
		}
		return b.init(onnx.FloatTensor(w.Name, dims, data)), nil
	}
	qw := quantized(l, w, fold)
	q := qw.q
	if transposed {
		q = transpose(q, rows, cols)
	}
	int4 := b.opt.Int4 && qw.spec.Bits <= 4
	if qw.spec.Bits < 8 && !b.notedBits[l.Name] {
		if b.notedBits == nil {
			b.notedBits = map[string]bool{}
		}
		b.notedBits[l.Name] = true
		if int4 {
			b.note("%s: %d-bit weights stored as INT4", l.Label(), qw.spec.Bits)
		} else {
			b.note("%s: %d-bit weights stored as INT8 values on the %d-bit grid [%d, %d]", l.Label(), qw.spec.Bits, qw.spec.Bits, -(1 << (qw.spec.Bits - 1)), 1<<(qw.spec.Bits-1)-1)
		}
	}
	p := prefix(w.Name)
	var qt, zt *onnx.Tensor
	pdims := []int64{}
	if qw.perChannel {
		pdims = []int64{int64(len(qw.scale))}
	}
	if int4 {
		qt = onnx.Int4Tensor(p+".weight_quantized", dims, toInt8(q))
		zt = onnx.Int4Tensor(p+".weight_zero_point", pdims, toInt8(qw.zp))
	} else {
		qt = onnx.Int8Tensor(p+".weight_quantized", dims, toInt8(q))
		zt = onnx.Int8Tensor(p+".weight_zero_point", pdims, toInt8(qw.zp))
	}
	ins := []string{b.init(qt), b.init(onnx.FloatTensor(p+".weight_scale", pdims, qw.scale)), b.init(zt)}
	var attrs []onnx.Attribute
	if qw.perChannel {
		axis := int64(0)
		if transposed {
			axis = 1
		}
		attrs = append(attrs, onnx.AttrInt("axis", axis))
	}
	return b.node(scope(l), "DequantizeLinear", ins, b.fresh(w.Name), attrs...), nil
}

func toInt8(v []int32) []int8 {
	out := make([]int8, len(v))
	for i, x := range v {
		out[i] = int8(x)
	}
	return out
}

// inputQuant applies the layer's input quantization to x and returns what
// the layer's first op reads. A dynamically quantized layer that
// onnxruntime's integer operators can run is added whole here: its output
// comes back as done.
func (b *builder) inputQuant(l *model.Layer, x, out string) (in, done string, err error) {
	if l.Input == nil {
		return x, "", nil
	}
	switch l.Input.Mode {
	case "static":
		if len(l.Input.Params.Scale) != 1 || len(l.Input.Params.ZeroPoint) != 1 {
			return "", "", errUnsupported("its input is statically quantized but was never calibrated (no input scale)")
		}
		return b.staticQDQ(l, x), "", nil
	case "dynamic":
		if b.integerDynamic(l) {
			done, err := b.dynamicInteger(l, x, out)
			return "", done, err
		}
		return b.dynamicQDQ(l, x), "", nil
	}
	return "", "", errUnsupported("unknown input quantization mode %q", l.Input.Mode)
}

// actZeroPoint is the zero point tensor an input quantization uses, and
// whether values must be clipped to the spec's grid first because the
// tensor type's range is wider. Asymmetric 8-bit inputs become UINT8 (the
// same grid shifted by 128, as onnxruntime's quantizer makes activations);
// 4-bit ones INT4 with Options.Int4; the rest INT8.
func (b *builder) actZeroPoint(name string, spec quant.Spec, zp int32) (*onnx.Tensor, bool) {
	switch {
	case b.opt.Int4 && spec.Bits <= 4:
		return onnx.Int4Tensor(name, nil, []int8{int8(zp)}), spec.Bits < 4
	case spec.Bits == 8 && spec.Scheme == quant.Asymmetric:
		return onnx.Uint8Tensor(name, nil, []uint8{uint8(zp + 128)}), false
	}
	return onnx.Int8Tensor(name, nil, []int8{int8(zp)}), spec.Bits < 8
}

// staticQDQ is the calibrated input quantization: QuantizeLinear then
// DequantizeLinear with the stored scale and zero point, after a Clip to
// the grid when it is narrower than the tensor type's.
func (b *builder) staticQDQ(l *model.Layer, x string) string {
	s := scope(l)
	spec, p := l.Input.Spec, l.Input.Params
	pre := prefix(l.Weights[0].Name)
	scale := b.init(onnx.FloatTensor(pre+".input_scale", nil, []float32{p.Scale[0]}))
	zt, clip := b.actZeroPoint(pre+".input_zero_point", spec, p.ZeroPoint[0])
	zp := b.init(zt)
	if clip {
		qmin, qmax := spec.Range()
		lo := float32(qmin-p.ZeroPoint[0]) * p.Scale[0]
		hi := float32(qmax-p.ZeroPoint[0]) * p.Scale[0]
		x = b.node(s, "Clip", []string{x, b.init(onnx.FloatTensor(pre+".input_min", nil, []float32{lo})),
			b.init(onnx.FloatTensor(pre+".input_max", nil, []float32{hi}))}, "")
		b.note("%s: %d-bit inputs quantized as %s after a Clip to their grid", l.Label(), spec.Bits, zt.Type)
	}
	q := b.node(s, "QuantizeLinear", []string{x, scale, zp}, "")
	return b.node(s, "DequantizeLinear", []string{q, scale, zp}, pre+".input_dequantized")
}

// dynamicQDQ quantizes x per batch as shrink's dynamic mode does, computed
// in the graph: the batch's range widened to hold 0, the scale and zero
// point shrink's rule gives it (torch.ao's observers', or ATen's
// ChooseQuantizationParams for reduce_range), QuantizeLinear and
// DequantizeLinear. out names the result ("" for a fresh name).
func (b *builder) dynamicQDQ(l *model.Layer, x string) string {
	return b.dynamicQDQOf(scope(l), l.Input.Spec, x, prefix(l.Weights[0].Name)+".input_dequantized")
}

func (b *builder) dynamicQDQOf(s string, spec quant.Spec, x, out string) string {
	qmin, qmax := spec.Range()
	lo := b.node(s, "ReduceMin", []string{x}, "", onnx.AttrInt("keepdims", 0))
	hi := b.node(s, "ReduceMax", []string{x}, "", onnx.AttrInt("keepdims", 0))
	if spec.ReduceRange {
		scale, zp, zpf := b.chooseParams(s, lo, hi, qmin, qmax)
		// UINT8 reaches 255: the grid's top is 127 (the range's largest
		// value can round one code past it, which shrink clamps).
		top := b.node(s, "Mul", []string{b.node(s, "Sub", []string{b.floatScalar(float32(qmax)), zpf}, ""), scale}, "")
		x = b.node(s, "Min", []string{x, top}, "")
		q := b.node(s, "QuantizeLinear", []string{x, scale, zp}, "")
		return b.node(s, "DequantizeLinear", []string{q, scale, zp}, out)
	}
	zero := b.floatScalar(0)
	lo = b.node(s, "Min", []string{lo, zero}, "")
	hi = b.node(s, "Max", []string{hi, zero}, "")
	var scale, zpf string
	if spec.Scheme == quant.Symmetric {
		m := b.node(s, "Max", []string{b.node(s, "Neg", []string{lo}, ""), hi}, "")
		scale = b.node(s, "Div", []string{m, b.floatScalar(float32(qmax-qmin) / 2)}, "")
		scale = b.node(s, "Max", []string{scale, b.floatScalar(quant.Epsilon)}, "")
		zpf = zero
	} else {
		scale = b.node(s, "Div", []string{b.node(s, "Sub", []string{hi, lo}, ""), b.floatScalar(float32(qmax - qmin))}, "")
		scale = b.node(s, "Max", []string{scale, b.floatScalar(quant.Epsilon)}, "")
		r := b.node(s, "Round", []string{b.node(s, "Div", []string{lo, scale}, "")}, "")
		zpf = b.node(s, "Sub", []string{b.floatScalar(float32(qmin)), r}, "")
		zpf = b.node(s, "Clip", []string{zpf, b.floatScalar(float32(qmin)), b.floatScalar(float32(qmax))}, "")
	}
	to := onnx.TypeInt8
	shifted := zpf
	if spec.Bits == 8 && spec.Scheme == quant.Asymmetric {
		to = onnx.TypeUint8
		shifted = b.node(s, "Add", []string{zpf, b.floatScalar(128)}, "")
	}
	if spec.Bits < 8 {
		lo := b.node(s, "Mul", []string{b.node(s, "Sub", []string{b.floatScalar(float32(qmin)), zpf}, ""), scale}, "")
		hi := b.node(s, "Mul", []string{b.node(s, "Sub", []string{b.floatScalar(float32(qmax)), zpf}, ""), scale}, "")
		x = b.node(s, "Clip", []string{x, lo, hi}, "")
	}
	zp := b.node(s, "Cast", []string{shifted}, "", onnx.AttrInt("to", int64(to)))
	q := b.node(s, "QuantizeLinear", []string{x, scale, zp}, "")
	return b.node(s, "DequantizeLinear", []string{q, scale, zp}, out)
}

// chooseParams is quant.ChooseParams in the graph, in DOUBLE as ATen
// computes it, for the unsigned reduce_range grid [qmin, qmax] = [0, 2^(b-1)-1]:
// the scale (hi - lo)/(qmax - qmin) over the range widened to hold 0, 0.1
// when that is 0 (all zeros, as h_0 of an LSTM), raised to quant.SmallScale
// when smaller; the zero point from whichever end rounds better, half to
// even, clamped. (The zero point of a raised scale is the one of the
// range's own scale: ATen widens the range by the same factor. A scale
// that is a float32 subnormal, which ATen makes 0.1, becomes SmallScale.)
// It returns the FLOAT scale and the zero point as UINT8 and as FLOAT.
func (b *builder) chooseParams(s, lo, hi string, qmin, qmax int32) (scale, zp, zpf string) {
	d := func(v float64) string {
		return b.scalar("const.f64."+strconv.FormatFloat(v, 'g', -1, 64), onnx.DoubleTensor("", nil, []float64{v}))
	}
	toD := func(x string) string {
		return b.node(s, "Cast", []string{x}, "", onnx.AttrInt("to", int64(onnx.TypeDouble)))
	}
	lo = b.node(s, "Min", []string{toD(lo), d(0)}, "")
	hi = b.node(s, "Max", []string{toD(hi), d(0)}, "")
	sc := b.node(s, "Div", []string{b.node(s, "Sub", []string{hi, lo}, ""), d(float64(qmax - qmin))}, "")
	sc = b.node(s, "Where", []string{b.node(s, "Equal", []string{sc, d(0)}, ""), d(0.1), sc}, "")
	fromMin := b.node(s, "Sub", []string{d(float64(qmin)), b.node(s, "Div", []string{lo, sc}, "")}, "")
	fromMax := b.node(s, "Sub", []string{d(float64(qmax)), b.node(s, "Div", []string{hi, sc}, "")}, "")
	errMin := b.node(s, "Sub", []string{d(math.Abs(float64(qmin))), b.node(s, "Abs", []string{b.node(s, "Div", []string{lo, sc}, "")}, "")}, "")
	errMax := b.node(s, "Sub", []string{d(math.Abs(float64(qmax))), b.node(s, "Abs", []string{b.node(s, "Div", []string{hi, sc}, "")}, "")}, "")
	z := b.node(s, "Where", []string{b.node(s, "Less", []string{errMin, errMax}, ""), fromMin, fromMax}, "")
	z = b.node(s, "Clip", []string{b.node(s, "Round", []string{z}, ""), d(float64(qmin)), d(float64(qmax))}, "")
	zp = b.node(s, "Cast", []string{z}, "", onnx.AttrInt("to", int64(onnx.TypeUint8)))
	zpf = b.node(s, "Cast", []string{z}, "", onnx.AttrInt("to", int64(onnx.TypeFloat)))
	scale = b.node(s, "Cast", []string{sc}, "", onnx.AttrInt("to", int64(onnx.TypeFloat)))
	scale = b.node(s, "Max", []string{scale, b.floatScalar(quant.SmallScale)}, "")
	return scale, zp, zpf
}

// integerDynamic reports whether the layer's dynamic quantization is what
// onnxruntime's DynamicQuantizeLinear computes (8-bit asymmetric inputs:
// UINT8 with a zero point; PyTorch's reduce_range grid 0..127 only with
// Options.ORTDynamic) and its first weight fits MatMulInteger (any
// INT8 weight) or ConvInteger (UINT8 weights with one zero point, so
// asymmetric per-channel weights do not). Weights Options.Int4 stores as
// INT4 go through DequantizeLinear instead, since those operators read
// 8-bit integers only.
func (b *builder) integerDynamic(l *model.Layer) bool {
	spec := l.Input.Spec
	if spec.Bits != 8 || spec.Scheme != quant.Asymmetric || l.Quant == nil || (b.opt.Int4 && l.Quant.Bits <= 4) ||
		spec.ReduceRange && !b.opt.ORTDynamic {
		return false
	}
	if l.Type == "conv2d" {
		qw := quantized(l, l.Weights[0], b.foldIfLast(l, 0))
		for _, z := range qw.zp {
			if z != qw.zp[0] {
				return false
			}
		}
	}
	return true
}

// foldIfLast is the batch norm folded into weight i of l when it is the
// layer's last.
func (b *builder) foldIfLast(l *model.Layer, i int) *bnFold {
	if i == len(l.Weights)-1 {
		return b.foldOf(l)
	}
	return nil
}

// dynamicInteger adds the layer as onnxruntime's quantize_dynamic writes
// it: DynamicQuantizeLinear on the input, MatMulInteger (linear) or
// ConvInteger (conv2d) on the integers, the INT32 result cast to float and
// scaled by the input's and the weight's scales, then the bias. A factored
// layer's second factor reads that float result, as shrink's does.
func (b *builder) dynamicInteger(l *model.Layer, x, out string) (string, error) {
	s := scope(l)
	w := l.Weights[0]
	single := len(l.Weights) == 1
	fold := b.foldIfLast(l, 0)
	qw := quantized(l, w, fold)
	if l.Input.Spec.ReduceRange {
		b.note("%s: DynamicQuantizeLinear quantizes inputs on onnxruntime's grid 0..255, not PyTorch's reduce_range 0..127: its logits differ from shrink's by that rounding", l.Label())
	}
	xq := b.nodeOuts(s, "DynamicQuantizeLinear", []string{x}, []string{"", "", ""})
	p := prefix(w.Name)
	rows, cols := w.Shape[0], len(w.Data)/w.Shape[0]
	pdims := []int64{}
	if qw.perChannel {
		pdims = []int64{int64(len(qw.scale))}
	} else {
		qw.scale, qw.zp = qw.scale[:1], qw.zp[:1]
	}
	if qw.spec.Bits < 8 && !b.notedBits[l.Name] {
		if b.notedBits == nil {
			b.notedBits = map[string]bool{}
		}
		b.notedBits[l.Name] = true
		b.note("%s: %d-bit weights stored as INT8 values on the %d-bit grid (onnxruntime's integer operators read INT8)", l.Label(), qw.spec.Bits, qw.spec.Bits)
	}
	var acc, scale string
	if l.Type == "conv2d" {
		c := l.Config.(*nn.Conv2d)
		u := make([]uint8, len(qw.q))
		for i, v := range qw.q {
			u[i] = uint8(v + 128)
		}
		wq := b.init(onnx.Uint8Tensor(p+".weight_quantized", int64s(w.Shape), u))
		wz := b.init(onnx.Uint8Tensor(p+".weight_zero_point", nil, []uint8{uint8(qw.zp[0] + 128)}))
		acc = b.node(s, "ConvInteger", []string{xq[0], wq, xq[2], wz}, "", convAttrs(c, w.Shape, 0)...)
		sdims := []int64{}
		if qw.perChannel {
			sdims = []int64{int64(rows), 1, 1}
		}
		scale = b.init(onnx.FloatTensor(p+".weight_scale", sdims, qw.scale))
	} else {
		wq := b.init(onnx.Int8Tensor(p+".weight_quantized", []int64{int64(cols), int64(rows)}, toInt8(transpose(qw.q, rows, cols))))
		ins := []string{xq[0], wq, xq[2]}
		if slices.ContainsFunc(qw.zp, func(z int32) bool { return z != 0 }) {
			ins = append(ins, b.init(onnx.Int8Tensor(p+".weight_zero_point", pdims, toInt8(qw.zp))))
		}
		acc = b.node(s, "MatMulInteger", ins, "")
		scale = b.init(onnx.FloatTensor(p+".weight_scale", pdims, qw.scale))
	}
	accf := b.node(s, "Cast", []string{acc}, "", onnx.AttrInt("to", int64(onnx.TypeFloat)))
	both := b.node(s, "Mul", []string{xq[1], scale}, "")
	bias := ""
	if single {
		bias = b.bias(l, fold)
	}
	if bias != "" && l.Type == "conv2d" {
		bias = b.node(s, "Reshape", []string{bias, b.init(onnx.Int64Tensor(p+".bias_shape", []int64{3}, []int64{int64(rows), 1, 1}))}, "")
	}
	o := ""
	if single && bias == "" {
		o = out
	}
	y := b.node(s, "Mul", []string{accf, both}, o)
	if bias != "" {
		y = b.node(s, "Add", []string{y, bias}, out)
	}
	if single {
		return y, nil
	}
	// The second factor, in float on the first's output.
	w1 := l.Weights[1]
	fold = b.foldOf(l)
	if l.Type == "conv2d" {
		wv, err := b.weight(l, w1, false, fold)
		if err != nil {
			return "", err
		}
		ins := []string{y, wv}
		if bias := b.bias(l, fold); bias != "" {
			ins = append(ins, bias)
		}
		return b.node(s, "Conv", ins, out, convAttrs(l.Config.(*nn.Conv2d), w1.Shape, 1)...), nil
	}
	matmul := len(l.In[0]) > 1
	wv, err := b.weight(l, w1, matmul, fold)
	if err != nil {
		return "", err
	}
	bias = b.bias(l, fold)
	if !matmul {
		ins := []string{y, wv}
		if bias != "" {
			ins = append(ins, bias)
		}
		return b.node(s, "Gemm", ins, out, onnx.AttrInt("transB", 1)), nil
	}
	if bias == "" {
		return b.node(s, "MatMul", []string{y, wv}, out), nil
	}
	return b.node(s, "Add", []string{b.node(s, "MatMul", []string{y, wv}, ""), bias}, out), nil
}
