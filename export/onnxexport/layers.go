package onnxexport

import (
	"fmt"
	"math"

	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/onnx"
)

// linear is nn.Linear: Gemm (transB) on [N, F] inputs, MatMul then Add on
// sequences [N, T, F], whose weight is stored transposed ([in, out]). A
// factored layer is two of them, the bias on the second.
func (b *builder) linear(l *model.Layer, x, out string) (string, error) {
	s := scope(l)
	matmul := len(l.In[0]) > 1
	x, done, err := b.inputQuant(l, x, out)
	if err != nil || done != "" {
		return done, err
	}
	for i, w := range l.Weights {
		last := i == len(l.Weights)-1
		var fold *bnFold
		if last {
			fold = b.foldOf(l)
		}
		wv, err := b.weight(l, w, matmul, fold)
		if err != nil {
			return "", err
		}
		bias := ""
		if last {
			bias = b.bias(l, fold)
		}
		o := ""
		if last {
			o = out
		}
		if !matmul && (bias == "" || !b.biasApart(l)) {
			ins := []string{x, wv}
			if bias != "" {
				ins = append(ins, bias)
			}
			x = b.node(s, "Gemm", ins, o, onnx.AttrInt("transB", 1))
			continue
		}
		if !matmul {
			x = b.node(s, "Gemm", []string{x, wv}, "", onnx.AttrInt("transB", 1))
			x = b.node(s, "Add", []string{x, bias}, o)
			continue
		}
		if bias == "" {
			x = b.node(s, "MatMul", []string{x, wv}, o)
			continue
		}
		x = b.node(s, "MatMul", []string{x, wv}, "")
		x = b.node(s, "Add", []string{x, bias}, o)
	}
	return x, nil
}

// conv is nn.Conv2d; a factored one is the convolution to rank channels
// then a 1x1 convolution with the bias.
func (b *builder) conv(l *model.Layer, x, out string) (string, error) {
	c := l.Config.(*nn.Conv2d)
	s := scope(l)
	x, done, err := b.inputQuant(l, x, out)
	if err != nil || done != "" {
		return done, err
	}
	for i, w := range l.Weights {
		last := i == len(l.Weights)-1
		var fold *bnFold
		if last {
			fold = b.foldOf(l)
		}
		wv, err := b.weight(l, w, false, fold)
		if err != nil {
			return "", err
		}
		ins := []string{x, wv}
		bias := ""
		if last {
			bias = b.bias(l, fold)
		}
		o := ""
		if last {
			o = out
		}
		if bias != "" && b.biasApart(l) {
			x = b.node(s, "Conv", ins, "", convAttrs(c, w.Shape, i)...)
			shape := b.init(onnx.Int64Tensor(l.Name+".bias_shape", []int64{3}, []int64{int64(c.Out), 1, 1}))
			x = b.node(s, "Add", []string{x, b.node(s, "Reshape", []string{bias, shape}, "")}, o)
			continue
		}
		if bias != "" {
			ins = append(ins, bias)
		}
		x = b.node(s, "Conv", ins, o, convAttrs(c, w.Shape, i)...)
	}
	return x, nil
}

// biasApart reports whether a layer's bias is added by its own Add node
// rather than as the Gemm's or Conv's bias input, which onnxruntime rounds
// to INT32 when it runs the layer as an integer kernel (planBiases decides).
func (b *builder) biasApart(l *model.Layer) bool {
	if l.Input == nil || l.Input.Mode != "static" {
		return false
	}
	return b.opt.FloatBias || b.structuralApart(l) || b.overBudget[l.Index]
}

// consumerQuantized is the layer whose 8-bit static input quantization
// alone reads layer l's output (or the output of the batch norm folded into
// it) through single-consumer ReLU, max pooling and flatten layers: where
// onnxruntime fuses l into QLinearConv or QGemm; nil when there is none.
// positions is how many of each output channel's values that layer reads:
// a max pooling passes one of each window on.
func (b *builder) consumerQuantized(l *model.Layer) (c *model.Layer, positions int) {
	i := l.Index
	if bn := b.fold[i]; bn != nil {
		i = bn.Index
	}
	positions = 1
	if len(l.Out) > 1 {
		positions = l.Out[1:].Size()
	}
	for {
		cs := b.m.Graph.Consumers(i)
		if len(cs) != 1 {
			return nil, 0
		}
		c := b.m.Layers[cs[0].Index]
		switch c.Type {
		case "maxpool2d":
			positions = c.Out[1:].Size()
			fallthrough
		case "relu", "flatten":
			i = c.Index
			continue
		}
		if c.Input != nil && c.Input.Mode == "static" && c.Input.Spec.Bits == 8 && len(c.Inputs) == 1 && len(c.Input.Params.Scale) == 1 {
			return c, positions
		}
		return nil, 0
	}
}

// convAttrs are Conv's attributes for weight i of a (possibly factored)
// convolution: the second factor is a plain 1x1 convolution.
func convAttrs(c *nn.Conv2d, shape []int, i int) []onnx.Attribute {
	if i == 1 {
		return []onnx.Attribute{onnx.AttrInts("kernel_shape", 1, 1)}
	}
	return []onnx.Attribute{
		onnx.AttrInts("kernel_shape", int64(shape[2]), int64(shape[3])),
		onnx.AttrInts("strides", int64(c.Stride[0]), int64(c.Stride[1])),
		onnx.AttrInts("pads", int64(c.Padding[0]), int64(c.Padding[1]), int64(c.Padding[0]), int64(c.Padding[1])),
		onnx.AttrInts("dilations", int64(c.Dilation[0]), int64(c.Dilation[1])),
		onnx.AttrInt("group", int64(c.Groups)),
	}
}

// bias is the layer's bias initializer, folded with a batch norm; "" when
// it has neither.
func (b *builder) bias(l *model.Layer, fold *bnFold) string {
	v, name := biasValues(l, fold)
	if v == nil {
		return ""
	}
	return b.init(onnx.FloatTensor(name, []int64{int64(len(v))}, v))
}

// biasValues is the bias a layer's node adds, folded with a batch norm, and
// its initializer's name; nil when it has neither.
func biasValues(l *model.Layer, fold *bnFold) ([]float32, string) {
	bias := l.Bias()
	if fold == nil {
		if bias == nil {
			return nil, ""
		}
		return bias.Data, bias.Name
	}
	v := make([]float32, len(fold.mul))
	for c := range v {
		var x float64
		if bias != nil {
			x = float64(bias.Data[c])
		}
		v[c] = float32(fold.add[c] + x*fold.mul[c])
	}
	name := l.BiasName()
	if bias == nil {
		name = l.Name + ".bias"
	}
	return v, name + "_folded"
}

// batchNorm is BatchNormalization in inference mode (the running
// statistics), affine or not.
func (b *builder) batchNorm(l *model.Layer, x, out string) (string, error) {
	bn := l.Config.(*nn.BatchNorm)
	c := l.In[0][0]
	get := func(suffix string, def float32) string {
		for _, set := range [][]*model.Weight{l.Params, l.Buffers} {
			for _, w := range set {
				if w.Name == l.Name+"."+suffix {
					return b.init(onnx.FloatTensor(w.Name, []int64{int64(c)}, w.Data))
				}
			}
		}
		v := make([]float32, c)
		for i := range v {
			v[i] = def
		}
		return b.init(onnx.FloatTensor(l.Name+"."+suffix, []int64{int64(c)}, v))
	}
	ins := []string{x, get("weight", 1), get("bias", 0), get("running_mean", 0), get("running_var", 1)}
	return b.node(scope(l), "BatchNormalization", ins, out, onnx.AttrFloat("epsilon", float32(bn.Eps))), nil
}

// pool is MaxPool or AveragePool (padding counted, as nn.AvgPool2d's
// count_include_pad), in floor mode.
func (b *builder) pool(l *model.Layer, x, out string) (string, error) {
	p := l.Config.(*nn.Pool2d)
	attrs := []onnx.Attribute{
		onnx.AttrInts("kernel_shape", int64(p.Kernel[0]), int64(p.Kernel[1])),
		onnx.AttrInts("strides", int64(p.Stride[0]), int64(p.Stride[1])),
		onnx.AttrInts("pads", int64(p.Padding[0]), int64(p.Padding[1]), int64(p.Padding[0]), int64(p.Padding[1])),
	}
	if l.Type == "maxpool2d" {
		return b.node(scope(l), "MaxPool", []string{x}, out, attrs...), nil
	}
	attrs = append(attrs, onnx.AttrInt("count_include_pad", 1))
	return b.node(scope(l), "AveragePool", []string{x}, out, attrs...), nil
}

// bnFold is a batch norm folded into the layer before it, per output
// channel: y = mul·x + add.
type bnFold struct {
	bn       *model.Layer
	mul, add []float64
}

// planFolds picks the batch norms to fold: those reading a quantized linear
// or conv layer that nothing else reads, with a positive multiplier on every
// channel (a weight's scales must stay positive). Folding keeps
// onnxruntime's QDQ pattern (DequantizeLinear, Conv, QuantizeLinear) whole;
// a float model keeps its batch norms.
func (b *builder) planFolds() {
	b.fold, b.folded = map[int]*model.Layer{}, map[int]bool{}
	for _, bn := range b.m.Layers {
		if bn.Type != "batchnorm1d" && bn.Type != "batchnorm2d" {
			continue
		}
		j := bn.Inputs[0]
		if j < 0 {
			continue
		}
		prev := b.m.Layers[j]
		if prev.Quant == nil || (prev.Type != "conv2d" && prev.Type != "linear") || len(b.m.Graph.Consumers(j)) != 1 {
			continue
		}
		if prev.Type == "linear" && len(prev.In[0]) != 1 {
			continue // a batchnorm1d over [C, L] normalizes another axis
		}
		f := foldOf(bn)
		ok := true
		for _, v := range f.mul {
			if !(v > 0) || math.IsInf(v, 0) {
				ok = false
			}
		}
		if !ok {
			b.note("%s: batch norm kept after the quantized %s (a channel's multiplier is not positive)", bn.Label(), prev.Label())
			continue
		}
		b.fold[j], b.folded[bn.Index] = bn, true
		b.note("%s: batch norm folded into %s (its weight's per-channel scales and its bias)", bn.Label(), prev.Label())
	}
}

// foldOf is the batch norm folded into layer l, or nil.
func (b *builder) foldOf(l *model.Layer) *bnFold {
	if bn := b.fold[l.Index]; bn != nil {
		f := foldOf(bn)
		return &f
	}
	return nil
}

// foldOf computes a batch norm's per-channel multiplier γ/√(σ²+ε) and
// offset β − μ·γ/√(σ²+ε), in float64 as shrink's batch norm computes
// 1/√(σ²+ε).
func foldOf(bn *model.Layer) bnFold {
	eps := bn.Config.(*nn.BatchNorm).Eps
	c := bn.In[0][0]
	get := func(suffix string, def float32) []float32 {
		for _, set := range [][]*model.Weight{bn.Params, bn.Buffers} {
			for _, w := range set {
				if w.Name == bn.Name+"."+suffix {
					return w.Data
				}
			}
		}
		v := make([]float32, c)
		for i := range v {
			v[i] = def
		}
		return v
	}
	gamma, beta, mean, variance := get("weight", 1), get("bias", 0), get("running_mean", 0), get("running_var", 1)
	f := bnFold{bn: bn, mul: make([]float64, c), add: make([]float64, c)}
	for i := 0; i < c; i++ {
		inv := 1 / math.Sqrt(float64(variance[i])+eps)
		f.mul[i] = float64(gamma[i]) * inv
		f.add[i] = float64(beta[i]) - float64(mean[i])*f.mul[i]
	}
	return f
}

// errUnsupported names what an export cannot express.
func errUnsupported(format string, args ...any) error { return fmt.Errorf(format, args...) }

// gelu is nn.GELU: the exact form as torch.onnx.export writes it before
// opset 20, x·0.5·(1 + erf(x/√2)) (Div, Erf, Add, Mul, Mul, which
// onnxruntime fuses into its Gelu), or the tanh approximation
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
func (b *builder) gelu(l *model.Layer, x, out string) string {
	s := scope(l)
	if l.Config.(*nn.GELU).Approximate == "tanh" {
		cube := b.node(s, "Mul", []string{b.node(s, "Mul", []string{x, x}, ""), x}, "")
		inner := b.node(s, "Add", []string{x, b.node(s, "Mul", []string{cube, b.floatScalar(0.044715)}, "")}, "")
		t := b.node(s, "Tanh", []string{b.node(s, "Mul", []string{inner, b.floatScalar(float32(math.Sqrt(2 / math.Pi)))}, "")}, "")
		half := b.node(s, "Mul", []string{x, b.floatScalar(0.5)}, "")
		return b.node(s, "Mul", []string{half, b.node(s, "Add", []string{t, b.floatScalar(1)}, "")}, out)
	}
	e := b.node(s, "Erf", []string{b.node(s, "Div", []string{x, b.floatScalar(float32(math.Sqrt2))}, "")}, "")
	y := b.node(s, "Mul", []string{x, b.node(s, "Add", []string{e, b.floatScalar(1)}, "")}, "")
	return b.node(s, "Mul", []string{y, b.floatScalar(0.5)}, out)
}

// layerNorm is nn.LayerNorm over the last dimension: LayerNormalization
// (opset 17).
func (b *builder) layerNorm(l *model.Layer, x, out string) string {
	d := int64(l.In[0][len(l.In[0])-1])
	var w, bias []float32
	for _, p := range l.Params {
		switch l.Suffix(p.Name) {
		case "weight":
			w = p.Data
		case "bias":
			bias = p.Data
		}
	}
	ins := []string{x, b.init(onnx.FloatTensor(l.Name+".weight", []int64{d}, w)), b.init(onnx.FloatTensor(l.Name+".bias", []int64{d}, bias))}
	return b.node(scope(l), "LayerNormalization", ins, out,
		onnx.AttrInt("axis", -1), onnx.AttrFloat("epsilon", float32(l.Config.(*nn.LayerNorm).Eps)))
}

// embedding is nn.Embedding: the input's token ids (whole FLOAT values, as
// shrink feeds them) cast to INT64 pick rows of the weight with Gather.
func (b *builder) embedding(l *model.Layer, x, out string) string {
	s := scope(l)
	w := l.Weights[0]
	ids := b.node(s, "Cast", []string{x}, "", onnx.AttrInt("to", int64(onnx.TypeInt64)))
	return b.node(s, "Gather", []string{b.init(onnx.FloatTensor(w.Name, int64s(w.Shape), w.Data)), ids}, out, onnx.AttrInt("axis", 0))
}
