package onnxexport

import (
	"fmt"

	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/onnx"
	"github.com/shrink-ml/shrink/quant"
)

// MSDomain is onnxruntime's operator domain (com.microsoft), where its
// quantize_dynamic puts DynamicQuantizeLSTM.
const MSDomain = "com.microsoft"

// onnxGates maps ONNX's gate blocks (i, o, f, c) to PyTorch's (i, f, g, o):
// ONNX block k is PyTorch block onnxGates[k].
var onnxGates = [4]int{0, 3, 1, 2}

// regate restacks an LSTM tensor of 4 gate blocks (rows of cols values each
// block h rows) from PyTorch's gate order into ONNX's.
func regate[T any](v []T, h, cols int) []T {
	out := make([]T, 0, len(v))
	for _, g := range onnxGates {
		out = append(out, v[g*h*cols:(g+1)*h*cols]...)
	}
	return out
}

// lstm is nn.LSTM(batch_first=True) as torch.onnx.export writes it (so that
// an import reads it back): the input transposed to time-major [T, N, F],
// one LSTM node per stacked layer (ONNX's LSTM is one layer) with W
// [1, 4H, in], R [1, 4H, H] and B [1, 8H] (W's bias then R's) in ONNX's gate
// order, zero initial states (the inputs left out), each output Y
// [T, 1, N, H] squeezed to [T, N, H], and the last transposed back to
// [N, T, H]. onnxruntime's LSTM runs only time-major (layout 0). Weights
// quantized without input quantization reach it through DequantizeLinear.
//
// A dynamically quantized layer quantizes its input sequence once and
// h_{t-1} at every step. Where onnxruntime's grid for that is the layer's
// (8-bit asymmetric inputs, 0..255 as DynamicQuantizeLinear computes it),
// the layer is what its quantize_dynamic makes of an LSTM:
// DynamicQuantizeLSTM (com.microsoft), whose W and R are the INT8 weights
// transposed to [1, in, 4H] and [1, H, 4H], with their scales and zero
// points ([1] per tensor, [1, 4H] per gate row). Other grids, PyTorch's
// reduce_range (0..127, ATen's rule) among them, that kernel cannot compute:
// the layer is then shrink's computation in the graph (lstmScan), unless
// Options.ORTDynamic trades exactness for DynamicQuantizeLSTM's speed.
func (b *builder) lstm(l *model.Layer, x, out string) (string, error) {
	c := l.Config.(*nn.LSTM)
	s := scope(l)
	h := c.Hidden
	if len(l.Weights) != 2*c.NumLayers {
		return "", fmt.Errorf("%d weights for %d layers (want weight_ih_lK and weight_hh_lK each)", len(l.Weights), c.NumLayers)
	}
	if l.Quant != nil && l.Quant.Bits < 8 && !b.notedBits[l.Name] {
		if b.notedBits == nil {
			b.notedBits = map[string]bool{}
		}
		b.notedBits[l.Name] = true
		b.note("%s: %d-bit weights stored as INT8 values on the %d-bit grid", l.Label(), l.Quant.Bits, l.Quant.Bits)
	}
	integer := lstmInteger(l)
	if integer && l.Input.Spec.ReduceRange {
		if !b.opt.ORTDynamic {
			return b.lstmScan(l, x, out)
		}
		b.note("%s: DynamicQuantizeLSTM quantizes inputs on onnxruntime's grid 0..255, not PyTorch's reduce_range 0..127: its logits differ from shrink's by that rounding", l.Label())
	}
	if !integer && l.Input != nil {
		return b.lstmScan(l, x, out)
	}
	axes := b.scalar("const.axes_1", onnx.Int64Tensor("", []int64{1}, []int64{1}))
	x = b.node(s, "Transpose", []string{x}, "", onnx.AttrInts("perm", 1, 0, 2))
	for k := 0; k < c.NumLayers; k++ {
		wih, whh := l.Weights[2*k], l.Weights[2*k+1]
		ins := []string{x, "", "", b.lstmBias(l, k)}
		if ins[3] == "" {
			ins = ins[:3]
		}
		op := "LSTM"
		if integer {
			op = "DynamicQuantizeLSTM"
			wq, ws, wz := b.lstmInt8(l, wih, h)
			rq, rs, rz := b.lstmInt8(l, whh, h)
			ins[1], ins[2] = wq, rq
			for len(ins) < 8 {
				ins = append(ins, "") // B, sequence_lens, initial_h, initial_c, P
			}
			ins = append(ins, ws, wz, rs, rz)
		} else {
			ins[1], ins[2] = b.lstmFloat(l, wih, h), b.lstmFloat(l, whh, h)
		}
		y := b.nodeOuts(s, op, ins, []string{""}, onnx.AttrInt("hidden_size", int64(h)))[0]
		if integer {
			b.g.Nodes[len(b.g.Nodes)-1].Domain = MSDomain
			b.msDomain = true
		}
		x = b.node(s, "Squeeze", []string{y, axes}, "")
	}
	return b.node(s, "Transpose", []string{x}, out, onnx.AttrInts("perm", 1, 0, 2)), nil
}

// lstmScan is a dynamically quantized LSTM computed as shrink computes it
// (and PyTorch's quantized LSTM, for reduce_range), layer by layer: the
// input sequence [N, T, F] quantized as one tensor by the layer's rule
// (dynamicQDQOf), its projection x W_ihᵀ + b_ih for every step at once
// (MatMul on the weight's DequantizeLinear), then a Scan over the steps
// (axis 1) whose body quantizes h_{t-1} over the batch by the same rule,
// adds h W_hhᵀ + b_hh, and applies the gates (PyTorch's order i, f, g, o)
// and the cell. onnxruntime runs the products in float on the values the
// integers stand for, which equals the integer products to float rounding.
func (b *builder) lstmScan(l *model.Layer, x, out string) (string, error) {
	c := l.Config.(*nn.LSTM)
	s := scope(l)
	h := int64(c.Hidden)
	spec := l.Input.Spec
	b.note("%s: its %s input quantization, which onnxruntime's LSTM kernels lack, is computed in the graph: the input projection, then a Scan over the steps", l.Label(), spec)
	for k := 0; k < c.NumLayers; k++ {
		wih, whh := l.Weights[2*k], l.Weights[2*k+1]
		var bih, bhh string
		for _, p := range l.Params {
			switch l.Suffix(p.Name) {
			case fmt.Sprintf("bias_ih_l%d", k):
				bih = b.init(onnx.FloatTensor(p.Name, []int64{4 * h}, p.Data))
			case fmt.Sprintf("bias_hh_l%d", k):
				bhh = b.init(onnx.FloatTensor(p.Name, []int64{4 * h}, p.Data))
			}
		}
		wv, err := b.weight(l, wih, true, nil)
		if err != nil {
			return "", err
		}
		rv, err := b.weight(l, whh, true, nil)
		if err != nil {
			return "", err
		}
		xq := b.dynamicQDQOf(s, spec, x, "")
		zx := b.node(s, "MatMul", []string{xq, wv}, "")
		if bih != "" {
			zx = b.node(s, "Add", []string{zx, bih}, "")
		}
		// Zero initial states [N, H], N read from the input.
		n := b.node(s, "Gather", []string{b.node(s, "Shape", []string{x}, ""),
			b.scalar("const.index_[0]", onnx.Int64Tensor("", []int64{1}, []int64{0}))}, "", onnx.AttrInt("axis", 0))
		dims := b.node(s, "Concat", []string{n, b.scalar(fmt.Sprintf("const.dim_[%d]", h), onnx.Int64Tensor("", []int64{1}, []int64{h}))}, "", onnx.AttrInt("axis", 0))
		zero := b.node(s, "ConstantOfShape", []string{dims}, "", onnx.AttrTensor("value", onnx.FloatTensor("", []int64{1}, []float32{0})))
		body := b.lstmStep(l, s, k, spec, h, rv, bhh)
		outs := b.nodeOuts(s, "Scan", []string{zero, zero, zx}, []string{"", "", ""},
			onnx.AttrGraph("body", body), onnx.AttrInt("num_scan_inputs", 1),
			onnx.AttrInts("scan_input_axes", 1), onnx.AttrInts("scan_output_axes", 1))
		x = outs[2]
	}
	return b.node(s, "Identity", []string{x}, out), nil
}

// lstmStep is the Scan body of layer k: (h_{t-1}, c_{t-1}, z_t) to (h_t,
// c_t, h_t), z_t being the step's input projection [N, 4H]. It reads
// W_hhᵀ (rv) and b_hh from the main graph.
func (b *builder) lstmStep(l *model.Layer, s string, k int, spec quant.Spec, h int64, rv, bhh string) *onnx.Graph {
	body := &onnx.Graph{Name: fmt.Sprintf("%s.l%d.step", l.Name, k)}
	main := b.g
	b.g = body
	defer func() { b.g = main }()
	s = fmt.Sprintf("%s/step_l%d", s, k)
	hp, cp, zt := b.fresh(s+"/h_prev"), b.fresh(s+"/c_prev"), b.fresh(s+"/z")
	body.AddInput(hp, onnx.TypeFloat, onnx.Batch("N", h))
	body.AddInput(cp, onnx.TypeFloat, onnx.Batch("N", h))
	body.AddInput(zt, onnx.TypeFloat, onnx.Batch("N", 4*h))
	hq := b.dynamicQDQOf(s, spec, hp, "")
	zh := b.node(s, "MatMul", []string{hq, rv}, "")
	if bhh != "" {
		zh = b.node(s, "Add", []string{zh, bhh}, "")
	}
	z := b.node(s, "Add", []string{zt, zh}, "")
	g := b.nodeOuts(s, "Split", []string{z}, []string{"", "", "", ""}, onnx.AttrInt("axis", 1))
	i := b.node(s, "Sigmoid", []string{g[0]}, "")
	f := b.node(s, "Sigmoid", []string{g[1]}, "")
	gg := b.node(s, "Tanh", []string{g[2]}, "")
	o := b.node(s, "Sigmoid", []string{g[3]}, "")
	c := b.node(s, "Add", []string{b.node(s, "Mul", []string{f, cp}, ""), b.node(s, "Mul", []string{i, gg}, "")}, "")
	hn := b.node(s, "Mul", []string{o, b.node(s, "Tanh", []string{c}, "")}, "")
	y := b.node(s, "Identity", []string{hn}, "")
	body.AddOutput(hn, onnx.TypeFloat, onnx.Batch("N", h))
	body.AddOutput(c, onnx.TypeFloat, onnx.Batch("N", h))
	body.AddOutput(y, onnx.TypeFloat, onnx.Batch("N", h))
	return body
}

// lstmInteger reports whether the layer exports as DynamicQuantizeLSTM:
// weights of at most 8 bits, inputs quantized dynamically to 8 unsigned
// bits (onnxruntime's only grid for them).
func lstmInteger(l *model.Layer) bool {
	return l.Quant != nil && l.Quant.Bits <= 8 && l.Input != nil && l.Input.Mode == "dynamic" &&
		l.Input.Spec.Bits == 8 && l.Input.Spec.Scheme == quant.Asymmetric
}

// lstmBias is layer k's B [1, 8H]: bias_ih_lk then bias_hh_lk, each in
// ONNX's gate order; "" without biases.
func (b *builder) lstmBias(l *model.Layer, k int) string {
	var bih, bhh []float32
	for _, p := range l.Params {
		switch l.Suffix(p.Name) {
		case fmt.Sprintf("bias_ih_l%d", k):
			bih = p.Data
		case fmt.Sprintf("bias_hh_l%d", k):
			bhh = p.Data
		}
	}
	if bih == nil || bhh == nil {
		return ""
	}
	h := len(bih) / 4
	v := append(regate(bih, h, 1), regate(bhh, h, 1)...)
	return b.init(onnx.FloatTensor(fmt.Sprintf("%s.bias_l%d", l.Name, k), []int64{1, int64(len(v))}, v))
}

// lstmFloat is a float LSTM's W or R [1, 4H, cols] in ONNX's gate order
// (under the state_dict name, restacked): the float weight, or a quantized
// one's integers through DequantizeLinear (per gate row on axis 1).
func (b *builder) lstmFloat(l *model.Layer, w *model.Weight, h int) string {
	cols := w.Shape[1]
	dims := []int64{1, int64(4 * h), int64(cols)}
	if l.Quant == nil {
		return b.init(onnx.FloatTensor(w.Name, dims, regate(w.Data, h, cols)))
	}
	qw := quantized(l, w, nil)
	var pdims []int64
	var attrs []onnx.Attribute
	if qw.perChannel {
		qw.scale, qw.zp = regate(qw.scale, h, 1), regate(qw.zp, h, 1)
		pdims = []int64{int64(4 * h)}
		attrs = append(attrs, onnx.AttrInt("axis", 1))
	} else {
		qw.scale, qw.zp = qw.scale[:1], qw.zp[:1]
		pdims = []int64{}
	}
	ins := []string{
		b.init(onnx.Int8Tensor(w.Name+"_quantized", dims, toInt8(regate(qw.q, h, cols)))),
		b.init(onnx.FloatTensor(w.Name+"_scale", pdims, qw.scale)),
		b.init(onnx.Int8Tensor(w.Name+"_zero_point", pdims, toInt8(qw.zp))),
	}
	return b.node(scope(l), "DequantizeLinear", ins, b.fresh(w.Name), attrs...)
}

// lstmInt8 is DynamicQuantizeLSTM's W or R: the INT8 weight in ONNX's gate
// order transposed to [1, cols, 4H], and its scale and zero point ([1] for
// the tensor, [1, 4H] per gate row).
func (b *builder) lstmInt8(l *model.Layer, w *model.Weight, h int) (q, scale, zp string) {
	cols := w.Shape[1]
	qw := quantized(l, w, nil)
	pdims := []int64{1}
	if qw.perChannel {
		qw.scale, qw.zp = regate(qw.scale, h, 1), regate(qw.zp, h, 1)
		pdims = []int64{1, int64(4 * h)}
	} else {
		qw.scale, qw.zp = qw.scale[:1], qw.zp[:1]
	}
	t := transpose(regate(qw.q, h, cols), 4*h, cols)
	q = b.init(onnx.Int8Tensor(w.Name+"_quantized", []int64{1, int64(cols), int64(4 * h)}, toInt8(t)))
	scale = b.init(onnx.FloatTensor(w.Name+"_scale", pdims, qw.scale))
	zp = b.init(onnx.Int8Tensor(w.Name+"_zero_point", pdims, toInt8(qw.zp)))
	return q, scale, zp
}

// last is out[:, -1, :]: Gather of step -1 on axis 1, as torch.onnx.export
// writes the indexing.
func (b *builder) last(l *model.Layer, x, out string) string {
	idx := b.scalar("const.index_-1", onnx.Int64Tensor("", []int64{}, []int64{-1}))
	return b.node(scope(l), "Gather", []string{x, idx}, out, onnx.AttrInt("axis", 1))
}
