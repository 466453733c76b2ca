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
// [N, T, H]. onnxruntime's LSTM runs only time-major (layout 0).
//
// A dynamically quantized layer with 8-bit asymmetric inputs becomes what
// onnxruntime's quantize_dynamic makes of an LSTM: DynamicQuantizeLSTM
// (com.microsoft), whose W and R are the INT8 weights transposed to
// [1, in, 4H] and [1, H, 4H], with their scales and zero points (one per
// tensor, shape [1], or per gate row, [1, 4H]). It quantizes the input
// sequence once and h_{t-1} at each step, as shrink does, but on
// onnxruntime's grid (0..255) where shrink's reduce_range uses 0..127. Other
// quantized layers run ONNX's float LSTM on their weights through
// DequantizeLinear, their inputs unquantized, and the export says so.
func (b *builder) lstm(l *model.Layer, x, out string) (string, error) {
	c := l.Config.(*nn.LSTM)
	s := scope(l)
	h := c.Hidden
	if len(l.Weights) != 2*c.NumLayers {
		return "", fmt.Errorf("%d weights for %d layers (want weight_ih_lK and weight_hh_lK each)", len(l.Weights), c.NumLayers)
	}
	integer := lstmInteger(l)
	if l.Quant != nil && !integer {
		inputs := "unquantized inputs"
		if l.Input != nil {
			inputs = l.Input.Spec.String() + " inputs"
		}
		b.note("%s: runs as a float LSTM on its dequantized weights, its inputs not quantized (onnxruntime's DynamicQuantizeLSTM takes 8-bit asymmetric inputs only; this layer has %s)", l.Label(), inputs)
	}
	if l.Quant != nil && l.Quant.Bits < 8 {
		b.note("%s: %d-bit weights stored as INT8 values on the %d-bit grid", l.Label(), l.Quant.Bits, l.Quant.Bits)
	}
	axes := b.scalar("const.axes_1", onnx.Int64Tensor("", []int64{1}, []int64{1}))
	x = b.node(s, "Transpose", []string{x}, "", onnx.AttrInts("perm", 1, 0, 2))
	for k := 0; k < c.NumLayers; k++ {
		wih, whh := l.Weights[2*k], l.Weights[2*k+1]
		ins := []string{x, "", "", b.lstmBias(l, k)}
		if ins[3] == "" {
			ins = ins[:3]
		}
		op, domain := "LSTM", ""
		if integer {
			op, domain = "DynamicQuantizeLSTM", MSDomain
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
		if domain != "" {
			b.g.Nodes[len(b.g.Nodes)-1].Domain = domain
			b.msDomain = true
		}
		x = b.node(s, "Squeeze", []string{y, axes}, "")
	}
	return b.node(s, "Transpose", []string{x}, out, onnx.AttrInts("perm", 1, 0, 2)), nil
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
