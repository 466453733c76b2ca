// Package onnximport reads a network from an ONNX file, as torch.onnx.export
// writes it, into shrink's layer graph: an arch.Spec listing the layers
// with PyTorch's module names, and the state_dict as a checkpoint.File, so
// model.FromFile builds the model and every stage works on it.
//
// Operators map to layer types (package nn): Gemm and MatMul (+ Add) to
// linear, Conv to conv2d, BatchNormalization to batchnorm2d/1d, Relu,
// Clip(0, 6) to relu6, Sigmoid, Tanh, Gelu or its Erf pattern, MaxPool,
// AveragePool, GlobalAveragePool, Flatten and Reshape to flat, Add, Concat,
// LayerNormalization, Gather on an initializer (embedding), Dropout;
// Identity passes its input on. The constant subgraphs torch.onnx.export
// writes (Shape, Gather, Unsqueeze, Concat, ConstantOfShape, Constant
// building a reshape target or an LSTM's zero initial state) are folded.
// Anything else is an error naming the node and its operator.
//
// Names: a layer's tensors keep their initializer names where these are
// state_dict names (layer1.0.conv1.weight); anonymous initializers
// (onnx::Conv_62) take the module path of their node
// (/layer1/layer1.0/conv1/Conv is layer1.0.conv1). A batch norm the exporter
// folded into its convolution stays folded: the convolution has a bias.
//
// The package imports no tensor library, so the pipeline can validate a
// recipe's `model: {onnx: ...}` with it.
package onnximport

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/onnx"
)

// Result is an imported network.
type Result struct {
	// Spec is the network as an explicit layer list with its input shape
	// and classes.
	Spec arch.Spec
	// Weights are its state_dict tensors (F32, and I64 num_batches_tracked
	// of batch norms), named as Spec's layers name them.
	Weights *checkpoint.File
	// SHA256 is the digest of the file's bytes (ReadFile only).
	SHA256 string
	// Notes say what the import did that a user may not expect (a pass-through
	// Dropout, a folded batch norm).
	Notes []string
}

// ReadFile imports the network in an ONNX file; errors name the file.
func ReadFile(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := onnx.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r, err := Import(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	r.SHA256 = hex.EncodeToString(sum[:])
	return r, nil
}

// Digest is the sha256 of an ONNX file's bytes, what stage keys hold for
// `model: {onnx: ...}`.
func Digest(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Import maps a parsed ONNX model to shrink's layer graph.
func Import(m *onnx.Model) (*Result, error) {
	if v := m.Opset(""); v < 7 {
		return nil, fmt.Errorf("the model imports opset %d of the default domain; shrink reads opset 7 and later (export with opset_version=13)", v)
	}
	im := &importer{g: m.Graph, vals: map[string]*val{}, consumers: map[string]int{}, names: map[string]bool{},
		ckpt: &checkpoint.File{Metadata: map[string]string{}}, layerOf: map[string]int{}}
	if err := im.run(); err != nil {
		return nil, err
	}
	return &Result{Spec: im.spec, Weights: im.ckpt, Notes: im.notes}, nil
}

// sdim is one element of a vector computed from shapes: a known size, or
// the batch size, which is not known until the model runs.
type sdim struct {
	n     int64
	batch bool
}

// val is what the importer knows of one ONNX value.
type val struct {
	c     *onnx.Tensor // a constant: an initializer, a Constant, or folded
	sym   []sdim       // an INT64 vector computed from shapes (Shape, Gather, Concat...)
	zeros []sdim       // ConstantOfShape(0): zeros of this shape
	a     *act         // an activation: a layer's output, the model input, or a view of one
	// part is a step of a pattern that becomes one layer (GELU's Erf
	// form), with a the activation it started from and first the pattern's
	// first node (which names the layer).
	part  string
	first *onnx.Node
}

// act is an activation: the output of layer from (arch.ModelInput for the
// model input), one sample of which has shape, seen in a layout.
type act struct {
	from  int
	shape arch.Shape
	// view is "" for [N, ...shape]; "tnf" for a sequence transposed to
	// time-major [T, N, F]; "lstmY" for an LSTM's Y [T, 1, N, H]; "lstmH"
	// for its Y_h [layers, N, H] (with layers, how many are stacked).
	view   string
	layers int
	k      int // lstmH: the stacked layer whose state this ends with
	// ids marks integer token ids (the model input of an embedding): only
	// a Gather of an embedding's rows reads them.
	ids bool
}

// layer is one layer being built: its spec keys and its tensors.
type layer struct {
	name    string
	typ     string
	keys    map[string]any
	inputs  []int // layers read, arch.ModelInput for the model input
	node    *onnx.Node
	tensors []checkpoint.Tensor
	out     arch.Shape
	lstmK   int // stacked LSTM layers merged into this one
}

type importer struct {
	g         *onnx.Graph
	vals      map[string]*val
	consumers map[string]int // how many live nodes read each value
	layers    []*layer
	names     map[string]bool
	layerOf   map[string]int // layer name -> index
	ckpt      *checkpoint.File
	spec      arch.Spec
	notes     []string
	input     string
}

func (im *importer) note(format string, args ...any) {
	im.notes = append(im.notes, fmt.Sprintf(format, args...))
}

func (im *importer) run() error {
	inits := map[string]bool{}
	for _, t := range im.g.Initializers {
		im.vals[t.Name] = &val{c: t}
		inits[t.Name] = true
	}
	var inputs []onnx.ValueInfo
	for _, in := range im.g.Inputs {
		if !inits[in.Name] { // IR < 4 lists initializers as inputs too
			inputs = append(inputs, in)
		}
	}
	if len(inputs) != 1 {
		return fmt.Errorf("the model has %d inputs; shrink imports networks with one input (the samples)", len(inputs))
	}
	if len(im.g.Outputs) != 1 {
		return fmt.Errorf("the model has %d outputs; shrink imports networks with one output (the logits)", len(im.g.Outputs))
	}
	in := inputs[0]
	if len(in.Shape) < 2 {
		return fmt.Errorf("input %q has shape %v: want [batch, ...one sample's shape]", in.Name, dimsString(in.Shape))
	}
	sample := arch.Shape{}
	for _, d := range in.Shape[1:] {
		if d.Param != "" || d.Value < 1 {
			return fmt.Errorf("input %q has shape %v: every dimension but the batch must be a fixed size", in.Name, dimsString(in.Shape))
		}
		sample = append(sample, int(d.Value))
	}
	if len(sample) > 3 {
		return fmt.Errorf("input %q has shape %v: shrink takes images [N, C, H, W], sequences [N, T, F] and vectors [N, F]", in.Name, dimsString(in.Shape))
	}
	ids := in.Type == onnx.TypeInt64 || in.Type == onnx.TypeInt32
	if in.Type != onnx.TypeFloat && in.Type != onnx.TypeUndefined && !ids {
		return fmt.Errorf("input %q is %s: shrink feeds FLOAT samples (or integer token ids to an embedding)", in.Name, in.Type)
	}
	im.input = in.Name
	im.vals[in.Name] = &val{a: &act{from: arch.ModelInput, shape: sample, ids: ids}}
	live := im.liveNodes()
	for i := range im.g.Nodes {
		if !live[i] {
			continue
		}
		for _, x := range im.g.Nodes[i].Inputs {
			im.consumers[x]++
		}
	}
	out := im.g.Outputs[0].Name
	im.consumers[out]++
	for i := range im.g.Nodes {
		if !live[i] {
			continue
		}
		n := &im.g.Nodes[i]
		if err := im.node(n); err != nil {
			return fmt.Errorf("node %s (%s): %w", nodeLabel(n), n.OpType, err)
		}
	}
	return im.finish(sample, out)
}

// liveNodes marks the nodes the output depends on; the rest are ignored.
func (im *importer) liveNodes() []bool {
	producer := map[string]int{}
	for i, n := range im.g.Nodes {
		for _, o := range n.Outputs {
			producer[o] = i
		}
	}
	live := make([]bool, len(im.g.Nodes))
	stack := []string{im.g.Outputs[0].Name}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		i, ok := producer[v]
		if !ok || live[i] {
			continue
		}
		live[i] = true
		for _, x := range im.g.Nodes[i].Inputs {
			if x != "" {
				stack = append(stack, x)
			}
		}
	}
	return live
}

// finish checks the output and builds the spec and the checkpoint.
func (im *importer) finish(sample arch.Shape, out string) error {
	v := im.vals[out]
	if v == nil || v.a == nil || v.a.view != "" || v.part != "" {
		return fmt.Errorf("output %q is not computed from the input by layers shrink has", out)
	}
	if len(im.layers) == 0 {
		return fmt.Errorf("output %q is the input itself: the model has no layers", out)
	}
	if v.a.from != len(im.layers)-1 {
		return fmt.Errorf("output %q is not the last layer's output (internal error: please report)", out)
	}
	if len(v.a.shape) != 1 {
		return fmt.Errorf("output %q has one sample's shape %v: a classifier outputs [N, classes]", out, v.a.shape)
	}
	spec := arch.Spec{Input: sample, Classes: v.a.shape[0]}
	// Parameter-free layers keep a name only where a from names them.
	referenced := map[int]bool{}
	for i, l := range im.layers {
		if !(len(l.inputs) == 1 && (l.inputs[0] == i-1 || i == 0)) {
			for _, j := range l.inputs {
				referenced[j] = true
			}
		}
	}
	for i, l := range im.layers {
		raw := map[string]any{"type": l.typ}
		if len(l.tensors) > 0 || referenced[i] {
			raw["name"] = l.name
		}
		for k, x := range l.keys {
			raw[k] = x
		}
		var ls arch.LayerSpec
		if err := ls.DecodeConfig(raw); err != nil {
			return fmt.Errorf("node %s (%s): layer %s: %v", nodeLabel(l.node), l.node.OpType, l.name, err)
		}
		switch {
		case i == 0 && len(l.inputs) == 1 && l.inputs[0] == arch.ModelInput:
		case len(l.inputs) == 1 && l.inputs[0] == i-1:
		default:
			for _, j := range l.inputs {
				if j == arch.ModelInput {
					return fmt.Errorf("node %s (%s) reads the model's input after other layers did: shrink's layer lists read the input in their first layer only", nodeLabel(l.node), l.node.OpType)
				}
				ls.From = append(ls.From, im.layers[j].name)
			}
		}
		spec.Layers = append(spec.Layers, ls)
		im.ckpt.Tensors = append(im.ckpt.Tensors, l.tensors...)
	}
	if _, err := spec.Graph(); err != nil {
		return fmt.Errorf("the imported network does not check: %v", err)
	}
	slices.SortFunc(im.ckpt.Tensors, func(a, b checkpoint.Tensor) int { return strings.Compare(a.Name, b.Name) })
	im.spec = spec
	return nil
}

func nodeLabel(n *onnx.Node) string {
	if n.Name != "" {
		return n.Name
	}
	if len(n.Outputs) > 0 {
		return "writing " + n.Outputs[0]
	}
	return "(unnamed)"
}

func dimsString(ds []onnx.Dim) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		switch {
		case d.Param != "":
			parts[i] = d.Param
		case d.Value < 0:
			parts[i] = "?"
		default:
			parts[i] = fmt.Sprint(d.Value)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
