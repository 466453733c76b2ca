// Package onnxexport writes a shrink model as an ONNX graph that onnxruntime
// runs and that computes what shrink computes (model.Logits):
//
//   - float layers as their ONNX operators (Gemm or MatMul, Conv,
//     BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool,
//     Flatten, Add, Concat), opset 13;
//   - pruned weights as the float tensors they are, zeros included;
//   - factored layers as two Gemm (or Conv) nodes, the bias on the second;
//   - quantized weights in the QDQ form of onnxruntime's quantizer: the
//     integers as an INT8 initializer fed to DequantizeLinear with their
//     scales and zero points (per channel on axis 0 of a Conv or Gemm weight,
//     axis 1 of a MatMul's [in, out] weight). Weights of fewer than 8 bits are
//     INT8 values on their smaller grid, or INT4 with Options.Int4 (opset 21);
//   - static input quantization as QuantizeLinear then DequantizeLinear with
//     the calibrated scale and zero point (UINT8 for asymmetric 8-bit inputs,
//     whose grid is the same shifted by 128, as onnxruntime's quantizer
//     makes them); a batch norm after a quantized layer is folded into its
//     weight's per-channel scales and its bias, so the QDQ pattern stays
//     whole for onnxruntime's integer kernels;
//   - biases in float, in the Conv or Gemm node (where onnxruntime rounds
//     them to INT32 for its integer kernels) only while the activations
//     that rounding is expected to move stay within Options.BiasBudget,
//     otherwise with their own Add (bias.go);
//   - nn.LSTM (batch_first) as torch.onnx.export writes it: Transpose to
//     time-major, one LSTM node per stacked layer (W, R, B restacked in
//     ONNX's gate order i, o, f, c), Squeeze, Transpose back; a last layer
//     is Gather of step -1. A dynamically quantized LSTM is onnxruntime's
//     DynamicQuantizeLSTM (com.microsoft), as its quantize_dynamic writes it;
//   - dynamic input quantization as onnxruntime's quantize_dynamic emits it
//     (DynamicQuantizeLinear then MatMulInteger or ConvInteger, the products
//     scaled back to float), or, for the grids those operators do not have
//     (fewer than 8 bits, symmetric inputs, per-channel zero points of a
//     convolution), the same rule computed in the graph (ReduceMin,
//     ReduceMax, the scale and zero point, QuantizeLinear, DequantizeLinear).
//
// The graph reads `input` [N, sample shape] and writes `logits` [N, classes]
// with a symbolic batch dimension N. Node names follow torch.onnx.export's
// module paths (/layer1/layer1.0/conv1/Conv), initializers keep state_dict
// names (fc1.weight, fc1.weight_quantized, fc1.weight_scale).
//
//	res, err := onnxexport.Export(m, onnxexport.Options{Metadata: f.Metadata})
//	err = res.Model.WriteFile("model.onnx")
package onnxexport

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/onnx"
)

// Opset is the default-domain opset of an export; OpsetInt4 the one INT4
// tensors need.
const (
	Opset     = 13
	OpsetInt4 = 21
)

// Options tune an export.
type Options struct {
	// Int4 stores weights (and quantizes inputs) of 4 bits and fewer as INT4
	// rather than as INT8 values on the 4-bit grid: half the bytes, but opset
	// 21 and IR 10, which onnxruntime 1.17+ reads and ONNX 1.12's checker
	// does not.
	Int4 bool
	// FloatBias adds every statically quantized layer's bias with its own
	// Add, so that onnxruntime cannot round it to INT32 (which it does to a
	// Conv's or Gemm's bias input when it runs the layer as an integer
	// kernel): its logits then match shrink's to float32 rounding at every
	// optimization level, but those layers run in float on dequantized
	// weights.
	FloatBias bool
	// IntBias leaves the bias in the Conv or Gemm node of every layer that
	// onnxruntime can run as an integer kernel (QLinearConv, QGemm), which
	// rounds it to INT32 (but a bias past INT32's range, which it cannot
	// round, stays apart): the fastest graph, but on deep networks its
	// logits drift from shrink's (a ResNet-20: median 6e-3). The default
	// does so only within BiasBudget; IntBias and FloatBias exclude each
	// other.
	IntBias bool
	// BiasBudget is how many output activations per sample the INT32
	// biases of the default export may move by a step of the next layer's
	// input grid, in expectation, summed over the layers (0:
	// DefaultBiasBudget). Layers over it add their bias in float.
	BiasBudget float64
	// ORTDynamic quantizes inputs on onnxruntime's own 8-bit grid (0..255,
	// DynamicQuantizeLinear and DynamicQuantizeLSTM with their integer
	// kernels) where the layer's dynamic quantization is PyTorch's
	// reduce_range (0..127, ATen's rule), which those operators cannot
	// compute: faster, but its logits then differ from shrink's (and
	// PyTorch's) by the two grids' rounding. Without it such layers compute
	// shrink's rule in the graph (an LSTM as a Scan over its steps).
	ORTDynamic bool
	// Metadata is the checkpoint's metadata: its stage, recipe_sha256 and
	// compression become shrink.stage, shrink.recipe_sha256 and
	// shrink.compression in the model's metadata_props.
	Metadata map[string]string
}

// Result is an export: the model and what a user should know about it.
type Result struct {
	Model *onnx.Model
	// Notes say where the ONNX model stores something differently from the
	// checkpoint (weights of fewer than 8 bits as INT8, a folded batch norm).
	Notes []string
}

// MetadataKeys maps checkpoint metadata to the metadata_props the export
// writes.
var MetadataKeys = map[string]string{
	"recipe_sha256": "shrink.recipe_sha256",
	"stage":         "shrink.stage",
	"compression":   "shrink.compression",
	"arch":          "shrink.arch",
	"key":           "shrink.key",
}

// Export builds the ONNX model of m.
func Export(m *model.Model, opt Options) (*Result, error) {
	opset := opsetFor(m)
	if opt.Int4 {
		opset = OpsetInt4
	}
	if opt.FloatBias && opt.IntBias {
		return nil, fmt.Errorf("onnx export: FloatBias (every bias apart, exact) and IntBias (every bias rounded to INT32) exclude each other: choose one")
	}
	if opt.BiasBudget < 0 {
		// Below 0 would keep every bias apart, FloatBias under another name.
		return nil, fmt.Errorf("onnx export: BiasBudget %g: give 0 or more moved activations per sample (0: DefaultBiasBudget), or FloatBias to keep every bias apart", opt.BiasBudget)
	}
	om := onnx.NewModel(opset)
	om.DocString = "exported by shrink from a " + describe(m)
	b := &builder{m: m, g: om.Graph, root: om.Graph, opt: opt, opset: opset, used: map[string]bool{}, nodeNames: map[string]int{}}
	if m.HasAdapters() {
		// ONNX has no LoRA branch: exporting the base alone would drop what
		// the adapters learned. Merged, as the dense export does, the graph
		// computes the adapted model (its layers in float).
		b.m = m.Clone()
		for _, l := range b.m.Layers {
			if l.Adapter != nil {
				b.note("%s: LoRA adapter merged into the weight (W + B A * scaling), the layer exported in float", l.Name)
			}
		}
		b.m.MergeAdapters()
	}
	if err := b.build(); err != nil {
		return nil, err
	}
	if b.msDomain {
		om.Opsets = append(om.Opsets, onnx.Opset{Domain: MSDomain, Version: 1})
	}
	for k, v := range opt.Metadata {
		if key, ok := MetadataKeys[k]; ok {
			om.Metadata[key] = v
		}
	}
	if _, ok := om.Metadata["shrink.arch"]; !ok {
		om.Metadata["shrink.arch"] = m.Spec.JSON()
	}
	if len(b.notes) > 0 {
		om.Metadata["shrink.export_notes"] = strings.Join(b.notes, "\n")
	}
	return &Result{Model: om, Notes: b.notes}, nil
}

func describe(m *model.Model) string {
	if m.Spec.Arch != "" {
		return m.Spec.Arch + " model"
	}
	return fmt.Sprintf("%d-layer model", len(m.Layers))
}

// builder turns the model's layers into nodes, one layer at a time.
type builder struct {
	m         *model.Model
	g         *onnx.Graph // where nodes go: the main graph, or a Scan's body
	root      *onnx.Graph // the main graph, which holds every initializer
	opt       Options
	opset     int64
	used      map[string]bool // value and initializer names
	nodeNames map[string]int
	notes     []string
	consts    map[string]string // shared scalar initializers by key
	// fold maps a quantized layer's index to the batch norm folded into it;
	// folded marks those batch norms.
	fold   map[int]*model.Layer
	folded map[int]bool
	// notedBits marks layers whose low-bit weights have a note.
	notedBits map[string]bool
	// overBudget marks layers whose bias planBiases keeps apart although
	// onnxruntime could run them as integer kernels.
	overBudget map[int]bool
	// msDomain is set when a node is in onnxruntime's com.microsoft domain.
	msDomain bool
}

func (b *builder) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

func (b *builder) build() error {
	in := b.m.Spec.InputShape()
	b.g.AddInput("input", onnx.TypeFloat, onnx.Batch("N", int64s(in)...))
	b.used["input"] = true
	b.planFolds()
	b.planBiases()
	outs := make([]string, len(b.m.Layers))
	last := len(b.m.Layers) - 1
	for i, l := range b.m.Layers {
		if b.folded[i] {
			outs[i] = outs[l.Inputs[0]]
			continue
		}
		ins := make([]string, len(l.Inputs))
		for k, j := range l.Inputs {
			if j == arch.ModelInput {
				ins[k] = "input"
			} else {
				ins[k] = outs[j]
			}
		}
		out := ""
		if i == last || (b.fold[i] != nil && b.fold[i].Index == last) {
			out = "logits"
		}
		v, err := b.layer(l, ins, out)
		if err != nil {
			return fmt.Errorf("layer %s (%s): %w", l.Label(), l.Type, err)
		}
		outs[i] = v
	}
	if outs[last] != "logits" {
		// The last layer passed its input through (a folded batch norm's
		// neighbour, or an identity-like layer): name the output.
		b.node(scope(b.m.Layers[last]), "Identity", []string{outs[last]}, "logits")
	}
	b.g.AddOutput("logits", onnx.TypeFloat, onnx.Batch("N", int64(b.m.Spec.Classes)))
	return nil
}

// layer adds one layer's nodes reading ins and returns its output value
// (named out when out is not empty).
func (b *builder) layer(l *model.Layer, ins []string, out string) (string, error) {
	s := scope(l)
	switch l.Type {
	case "linear":
		return b.linear(l, ins[0], out)
	case "conv2d":
		return b.conv(l, ins[0], out)
	case "batchnorm1d", "batchnorm2d":
		return b.batchNorm(l, ins[0], out)
	case "relu":
		return b.node(s, "Relu", ins, out), nil
	case "maxpool2d", "avgpool2d":
		return b.pool(l, ins[0], out)
	case "adaptive_avgpool2d":
		return b.node(s, "GlobalAveragePool", ins, out), nil
	case "flatten":
		// Reshape to [N, -1] rather than Flatten: onnxruntime moves a
		// QuantizeLinear back across Reshape (not Flatten) to the conv
		// that feeds it, which then runs as QLinearConv.
		shape := b.scalar("const.flatten_shape", onnx.Int64Tensor("", []int64{2}, []int64{0, -1}))
		return b.node(s, "Reshape", []string{ins[0], shape}, out), nil
	case "add":
		// Summed left to right, as shrink adds.
		acc := ins[0]
		for k, x := range ins[1:] {
			o := ""
			if k == len(ins)-2 {
				o = out
			}
			acc = b.node(s, "Add", []string{acc, x}, o)
		}
		return acc, nil
	case "concat":
		axis := int64(1) // channels of [N, C, H, W], features of [N, F]
		if len(l.In[0]) == 2 {
			axis = 2 // features of a sequence [N, T, F]
		}
		return b.node(s, "Concat", ins, out, onnx.AttrInt("axis", axis)), nil
	case "relu6":
		return b.node(s, "Clip", []string{ins[0], b.floatScalar(0), b.floatScalar(6)}, out), nil
	case "sigmoid":
		return b.node(s, "Sigmoid", ins, out), nil
	case "tanh":
		return b.node(s, "Tanh", ins, out), nil
	case "silu":
		return b.node(s, "Mul", []string{ins[0], b.node(s, "Sigmoid", ins, "")}, out), nil
	case "gelu":
		return b.gelu(l, ins[0], out), nil
	case "layernorm":
		return b.layerNorm(l, ins[0], out), nil
	case "dropout":
		// The identity in inference; kept as Dropout (training_mode false) so
		// the layer and its p survive an import.
		p := b.scalar("const.dropout."+strconv.FormatFloat(l.Config.(*nn.Dropout).P, 'g', -1, 64), onnx.FloatTensor("", nil, []float32{float32(l.Config.(*nn.Dropout).P)}))
		return b.node(s, "Dropout", []string{ins[0], p}, out), nil
	case "embedding":
		return b.embedding(l, ins[0], out), nil
	case "lstm":
		return b.lstm(l, ins[0], out)
	case "last":
		return b.last(l, ins[0], out), nil
	}
	return "", fmt.Errorf("no ONNX export for layer type %s yet (exportable: %s)", l.Type, strings.Join(exportable, ", "))
}

// exportable lists the layer types Export writes.
var exportable = []string{"linear", "conv2d", "batchnorm1d", "batchnorm2d", "layernorm", "relu", "relu6", "sigmoid", "tanh", "silu", "gelu",
	"maxpool2d", "avgpool2d", "adaptive_avgpool2d", "flatten", "dropout", "add", "concat", "embedding", "lstm", "last"}

// opsetFor is the lowest default-domain opset the model's layers need:
// LayerNormalization came with opset 17.
func opsetFor(m *model.Model) int64 {
	for _, l := range m.Layers {
		if l.Type == "layernorm" {
			return 17
		}
	}
	return Opset
}

// scope is the layer's node-name prefix, as torch.onnx.export writes module
// paths: layer1.0.conv1 is /layer1/layer1.0/conv1, a module in a container
// named with its parent. Unnamed layers get their type and position.
func scope(l *model.Layer) string {
	if l.Name == "" {
		return "/" + l.Type + "_" + strconv.Itoa(l.Index)
	}
	parts := strings.Split(l.Name, ".")
	segs := make([]string, len(parts))
	for i, p := range parts {
		segs[i] = p
		if _, err := strconv.Atoi(p); err == nil && i > 0 {
			segs[i] = parts[i-1] + "." + p
		}
	}
	return "/" + strings.Join(segs, "/")
}

// node appends a node named scope/op (numbered when the scope has several of
// that op) and returns its output: out, or scope/op_output_0.
func (b *builder) node(scope, op string, ins []string, out string, attrs ...onnx.Attribute) string {
	return b.nodeOuts(scope, op, ins, []string{out}, attrs...)[0]
}

// nodeOuts is node for several outputs; empty names are generated.
func (b *builder) nodeOuts(scope, op string, ins []string, outs []string, attrs ...onnx.Attribute) []string {
	name := scope + "/" + op
	k := b.nodeNames[name]
	b.nodeNames[name]++
	if k > 0 {
		name += "_" + strconv.Itoa(k)
	}
	outs = slices.Clone(outs)
	for i, o := range outs {
		if o == "" {
			outs[i] = b.fresh(name + "_output_" + strconv.Itoa(i))
		} else {
			b.used[o] = true
		}
	}
	b.g.Nodes = append(b.g.Nodes, onnx.Node{Name: name, OpType: op, Inputs: ins, Outputs: outs, Attrs: attrs})
	return outs
}

// fresh returns name, or name with a number when it is taken, and takes it.
func (b *builder) fresh(name string) string {
	n := name
	for i := 1; b.used[n]; i++ {
		n = name + "_" + strconv.Itoa(i)
	}
	b.used[n] = true
	return n
}

// init adds an initializer under a fresh name based on t.Name and returns
// that name.
func (b *builder) init(t *onnx.Tensor) string {
	t.Name = b.fresh(t.Name)
	b.root.AddInitializer(t) // in the main graph, which a Scan's body sees too
	return t.Name
}

// scalar is a shared scalar initializer (a constant of the graph's
// arithmetic), added once.
func (b *builder) scalar(key string, t *onnx.Tensor) string {
	if b.consts == nil {
		b.consts = map[string]string{}
	}
	if n, ok := b.consts[key]; ok {
		return n
	}
	t.Name = key
	n := b.init(t)
	b.consts[key] = n
	return n
}

func (b *builder) floatScalar(v float32) string {
	return b.scalar("const."+strconv.FormatFloat(float64(v), 'g', -1, 32), onnx.FloatTensor("", nil, []float32{v}))
}

func int64s(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

// sortedKeys is maps.Keys in order, for deterministic output.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
