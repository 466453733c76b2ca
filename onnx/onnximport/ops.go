package onnximport

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/onnx"
)

// supported lists the operators the importer reads, for messages.
const supported = "Gemm, MatMul (+ Add), Conv, BatchNormalization, Relu, Clip(0, 6), Sigmoid, Tanh, Gelu (or its Erf pattern), MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape to flat, Add, Concat, LSTM, Gather, LayerNormalization, Dropout, Identity, and the constant shape plumbing (Shape, Gather, Unsqueeze, Concat, ConstantOfShape, Constant, Transpose, Squeeze)"

// requiredInputs is how many leading inputs ONNX requires of each operator
// the importer reads (the rest are optional: Gemm's C, Conv's B, an LSTM's
// B, sequence_lens and initial states), checked before any handler reads
// them.
var requiredInputs = map[string]int{
	"Identity": 1, "Dropout": 1, "Gemm": 2, "MatMul": 2, "Conv": 2, "BatchNormalization": 5,
	"Relu": 1, "Sigmoid": 1, "Tanh": 1, "Gelu": 1, "Erf": 1, "Clip": 1,
	"MaxPool": 1, "AveragePool": 1, "GlobalAveragePool": 1, "Flatten": 1, "Reshape": 2,
	"Squeeze": 1, "Unsqueeze": 1, "Transpose": 1, "Add": 2, "Mul": 2, "Div": 2, "Concat": 1,
	"Gather": 2, "LayerNormalization": 2, "LSTM": 3, "Shape": 1, "Cast": 1, "ConstantOfShape": 1,
}

// node maps one operator: folds it when its inputs are constants or
// shapes, adds a layer when it reads an activation.
func (im *importer) node(n *onnx.Node) error {
	ins := make([]*val, len(n.Inputs))
	acts := 0
	for i, x := range n.Inputs {
		if x == "" {
			continue
		}
		v, ok := im.vals[x]
		if !ok {
			return fmt.Errorf("input %q is not defined before the node", x)
		}
		ins[i] = v
		if v.a != nil {
			acts++
		}
	}
	if need := requiredInputs[n.OpType]; len(ins) < need || slices.Contains(ins[:need], nil) {
		return fmt.Errorf("%s with inputs %q: ONNX requires its first %d", n.OpType, n.Inputs, need)
	}
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return fmt.Errorf("operator %s of domain %s: shrink imports the default ONNX domain (%s)", n.OpType, n.Domain, supported)
	}
	if acts == 0 {
		return im.fold(n, ins)
	}
	switch n.OpType {
	case "Identity", "Dropout":
		return im.passThrough(n, ins)
	case "Gemm":
		return im.gemm(n, ins)
	case "MatMul":
		return im.matmul(n, ins)
	case "Conv":
		return im.conv(n, ins)
	case "BatchNormalization":
		return im.batchNorm(n, ins)
	case "Relu", "Sigmoid":
		return im.activation(n, ins, strings.ToLower(n.OpType))
	case "Tanh":
		if ins[0].part != "" {
			return im.geluPart(n, ins)
		}
		return im.activation(n, ins, "tanh")
	case "Gelu":
		approx := "none"
		if a, ok := n.Attr("approximate"); ok {
			approx = a.String
		}
		return im.activationKeys(n, ins, "gelu", map[string]any{"approximate": approx})
	case "Clip":
		return im.clip(n, ins)
	case "MaxPool", "AveragePool":
		return im.pool(n, ins)
	case "GlobalAveragePool":
		return im.activation(n, ins, "adaptive_avgpool2d")
	case "Flatten":
		return im.flatten(n, ins)
	case "Reshape":
		return im.reshape(n, ins)
	case "Squeeze":
		return im.squeeze(n, ins)
	case "Transpose":
		return im.transpose(n, ins)
	case "Add":
		return im.add(n, ins)
	case "Mul", "Div", "Erf":
		return im.geluPart(n, ins)
	case "Concat":
		return im.concat(n, ins)
	case "Gather":
		return im.gather(n, ins)
	case "LayerNormalization":
		return im.layerNorm(n, ins)
	case "LSTM":
		return im.lstm(n, ins)
	case "Shape":
		return im.shape(n, ins)
	case "Cast":
		to, _ := n.Attr("to")
		switch onnx.DataType(to.Int) {
		case onnx.TypeFloat:
			if !ins[0].a.ids {
				return im.passThrough(n, ins)
			}
		case onnx.TypeInt64, onnx.TypeInt32:
			// Token ids as integers (shrink's batches hold them as whole floats).
			if a := ins[0].a; ins[0].part == "" && a.view == "" && a.from == arch.ModelInput {
				im.set(n, 0, &val{a: &act{from: a.from, shape: a.shape, ids: true}})
				return nil
			}
		}
	}
	return fmt.Errorf("no shrink layer type for this operator on an activation (shrink imports %s)", supported)
}

// set records a node's output.
func (im *importer) set(n *onnx.Node, i int, v *val) {
	if i < len(n.Outputs) && n.Outputs[i] != "" {
		im.vals[n.Outputs[i]] = v
	}
}

// only requires that the node's other outputs are unused (Dropout's mask,
// MaxPool's indices).
func (im *importer) only(n *onnx.Node, keep int) error {
	for i, o := range n.Outputs {
		if i != keep && o != "" && im.consumers[o] > 0 {
			return fmt.Errorf("its output %d (%s) is used, which shrink's %s does not produce", i, o, n.OpType)
		}
	}
	return nil
}

// plain returns the node's single activation input in the [N, ...] layout.
func plain(n *onnx.Node, ins []*val) (*act, error) {
	if len(ins) == 0 || ins[0] == nil || ins[0].a == nil {
		return nil, errors.New("its first input is not an activation")
	}
	if ins[0].part != "" {
		return nil, fmt.Errorf("it reads part of a pattern (%s) that is not a layer shrink has", ins[0].part)
	}
	a := ins[0].a
	if a.view != "" {
		return nil, fmt.Errorf("it reads an LSTM's or a transposed sequence's value (layout %s), which shrink's layers do not take", a.view)
	}
	if a.ids {
		return nil, errors.New("it reads integer token ids, which only an embedding (Gather of an initializer's rows) takes")
	}
	for i, v := range ins[1:] {
		if v != nil && v.a != nil {
			return nil, fmt.Errorf("input %d is an activation too: shrink takes it as a constant", i+1)
		}
	}
	return a, nil
}

func (im *importer) passThrough(n *onnx.Node, ins []*val) error {
	if n.OpType == "Dropout" {
		if err := im.only(n, 0); err != nil {
			return err
		}
		if _, ok := arch.LayerTypeOf("dropout"); ok {
			p := 0.5
			if len(ins) > 1 && ins[1] != nil && ins[1].c != nil {
				if f, err := floats(ins[1].c); err == nil && len(f) == 1 {
					p = decimal(f[0])
				}
			} else if a, ok := n.Attr("ratio"); ok {
				p = decimal(a.Float)
			}
			return im.activationKeys(n, ins[:1], "dropout", map[string]any{"p": p})
		}
		im.note("%s: Dropout is the identity in inference; no dropout layer type in this build, so it is left out", nodeLabel(n))
	}
	if ins[0] == nil || ins[0].a == nil {
		return errors.New("its input is not an activation")
	}
	im.set(n, 0, ins[0])
	return nil
}

// addLayer appends a layer reading acts and records its output value.
func (im *importer) addLayer(n *onnx.Node, typ, name string, keys map[string]any, acts []*act, tensors []checkpoint.Tensor) (*act, error) {
	t, ok := arch.LayerTypeOf(typ)
	if !ok {
		return nil, fmt.Errorf("it maps to the layer type %s, which this build of shrink does not have", typ)
	}
	raw := map[string]any{"type": typ}
	for k, v := range keys {
		raw[k] = v
	}
	var ls arch.LayerSpec
	if err := ls.DecodeConfig(raw); err != nil {
		return nil, fmt.Errorf("as a %s layer: %v", typ, err)
	}
	shapes := make([]arch.Shape, len(acts))
	l := &layer{typ: typ, keys: keys, node: n, tensors: tensors}
	for i, a := range acts {
		shapes[i] = a.shape
		l.inputs = append(l.inputs, a.from)
	}
	if t.Inputs == arch.Many && len(acts) < 2 {
		return nil, fmt.Errorf("%s takes two or more inputs", typ)
	}
	out, err := ls.Config.Shape(shapes)
	if err != nil {
		return nil, fmt.Errorf("as a %s layer on %s: %v", typ, shapesString(shapes), err)
	}
	l.out = out
	if name == "" {
		name = im.freeName(n, typ)
	}
	if im.names[name] {
		return nil, fmt.Errorf("a second layer named %s: the initializers or node names give two layers one module path", name)
	}
	im.names[name] = true
	l.name = name
	// Tensors are named after the layer: the exporter's may differ in prefix
	// when they were anonymous.
	for i := range l.tensors {
		l.tensors[i].Name = name + "." + l.tensors[i].Name
	}
	want := ls.Config.Tensors(shapes)
	if len(want) != len(l.tensors) {
		return nil, fmt.Errorf("internal error: %d tensors for a %s layer that has %d (please report)", len(l.tensors), typ, len(want))
	}
	for i, w := range want {
		if !slices.Equal(w.Shape, l.tensors[i].Shape) {
			return nil, fmt.Errorf("tensor %s is %v, a %s layer on %s needs %v", l.tensors[i].Name, l.tensors[i].Shape, typ, shapesString(shapes), w.Shape)
		}
	}
	im.layerOf[name] = len(im.layers)
	im.layers = append(im.layers, l)
	a := &act{from: len(im.layers) - 1, shape: out}
	im.set(n, 0, &val{a: a})
	return a, nil
}

func (im *importer) activation(n *onnx.Node, ins []*val, typ string) error {
	return im.activationKeys(n, ins, typ, nil)
}

func (im *importer) activationKeys(n *onnx.Node, ins []*val, typ string, keys map[string]any) error {
	a, err := plain(n, ins)
	if err != nil {
		return err
	}
	_, err = im.addLayer(n, typ, "", keys, []*act{a}, nil)
	return err
}

// weightLayerName is a weight layer's module path: from its weight's
// initializer name when that is a state_dict name (fc.weight), else from
// the node's module path.
func (im *importer) weightLayerName(n *onnx.Node, initializer string) (string, error) {
	if p, ok := strings.CutSuffix(initializer, ".weight"); ok && modulePathLike(p) {
		return p, nil
	}
	if p := modulePath(n.Name); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("neither its weight %q nor the node's name gives a module path: export with torch.onnx.export (which names nodes /module/path/Op), or name the initializer NAME.weight", initializer)
}

// modulePathLike reports whether s reads as a PyTorch module path.
func modulePathLike(s string) bool {
	if s == "" || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		if !(r == '.' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// modulePath is the module path torch.onnx.export puts in a node's name:
// /layer1/layer1.0/conv1/Conv is layer1.0.conv1 (a container's child is
// named with its parent). "" when the name has none.
func modulePath(node string) string {
	if !strings.HasPrefix(node, "/") {
		return ""
	}
	segs := strings.Split(node[1:], "/")
	segs = segs[:len(segs)-1] // the op
	path := ""
	for _, s := range segs {
		if s == "" {
			return ""
		}
		switch {
		case path == "":
			path = s
		case strings.HasPrefix(s, lastPart(path)+"."):
			path = strings.TrimSuffix(path, lastPart(path)) + s
		default:
			path += "." + s
		}
	}
	if !modulePathLike(path) {
		return ""
	}
	return path
}

func lastPart(path string) string {
	return path[strings.LastIndex(path, ".")+1:]
}

// typeStems are the words by which a module's name says it is a layer of
// that type (self.relu, self.pool, self.drop).
var typeStems = map[string]string{
	"relu": "relu", "relu6": "relu", "sigmoid": "sig", "tanh": "tanh", "gelu": "gelu", "silu": "silu",
	"maxpool2d": "pool", "avgpool2d": "pool", "adaptive_avgpool2d": "pool", "flatten": "flat", "dropout": "drop",
}

// freeName names a parameter-free layer: its module path when the module
// is one of its kind (layer1.0.relu), else the path and the type
// (layer1.0.add), numbered when taken.
func (im *importer) freeName(n *onnx.Node, typ string) string {
	p := modulePath(n.Name)
	base := typ
	if p != "" {
		base = p + "." + typ
		if stem, ok := typeStems[typ]; ok && strings.Contains(strings.ToLower(lastPart(p)), stem) {
			base = p
		}
	}
	name := base
	for i := 1; im.names[name]; i++ {
		name = base + "_" + strconv.Itoa(i)
	}
	return name
}

// constInput is input i as a constant of the node.
func constInput(n *onnx.Node, ins []*val, i int, what string) (*onnx.Tensor, error) {
	if i >= len(ins) || ins[i] == nil {
		return nil, fmt.Errorf("no %s (input %d)", what, i)
	}
	if ins[i].c == nil {
		return nil, fmt.Errorf("its %s (input %d, %s) is not a constant: shrink imports fixed weights", what, i, n.Inputs[i])
	}
	return ins[i].c, nil
}

// constFloats is constInput's tensor with its values as float32 (floats).
func constFloats(n *onnx.Node, ins []*val, i int, what string) (*onnx.Tensor, []float32, error) {
	t, err := constInput(n, ins, i, what)
	if err != nil {
		return nil, nil, err
	}
	v, err := floats(t)
	return t, v, err
}

// floats reads a FLOAT or DOUBLE tensor as float32.
func floats(t *onnx.Tensor) ([]float32, error) {
	switch t.Type {
	case onnx.TypeFloat:
		return t.Float32, nil
	case onnx.TypeDouble:
		out := make([]float32, len(t.Float64))
		for i, x := range t.Float64 {
			out[i] = float32(x)
		}
		return out, nil
	}
	return nil, fmt.Errorf("tensor %q is %s, not FLOAT", t.Name, t.Type)
}

// ints reads an integer tensor.
func ints(t *onnx.Tensor) ([]int64, error) {
	switch t.Type {
	case onnx.TypeInt64:
		return t.Int64, nil
	case onnx.TypeInt32:
		out := make([]int64, len(t.Int32))
		for i, x := range t.Int32 {
			out[i] = int64(x)
		}
		return out, nil
	}
	return nil, fmt.Errorf("tensor %q is %s, not an integer tensor", t.Name, t.Type)
}

func intsOf(ds []int64) []int {
	out := make([]int, len(ds))
	for i, d := range ds {
		out[i] = int(d)
	}
	return out
}

// f32 is a tensor entry of the checkpoint, named by its suffix until the
// layer's name is known.
func f32(suffix string, shape []int, v []float32) checkpoint.Tensor {
	return checkpoint.F32(suffix, shape, v)
}

// attrInts is an INTS attribute or def.
func attrInts(n *onnx.Node, name string, def ...int64) []int64 {
	if a, ok := n.Attr(name); ok {
		return a.Ints
	}
	return def
}

func attrInt(n *onnx.Node, name string, def int64) int64 {
	if a, ok := n.Attr(name); ok {
		return a.Int
	}
	return def
}

func attrFloat(n *onnx.Node, name string, def float32) float32 {
	if a, ok := n.Attr(name); ok {
		return a.Float
	}
	return def
}

func shapesString(in []arch.Shape) string {
	parts := make([]string, len(in))
	for i, s := range in {
		parts[i] = s.String()
	}
	return strings.Join(parts, " and ")
}

// pair reads a 2-D attribute as a pair (one number when both agree).
func pair(v []int64) any {
	if v[0] == v[1] {
		return int(v[0])
	}
	return []any{int(v[0]), int(v[1])}
}

// symmetricPads reads [top, left, bottom, right] pads that pad both sides
// alike, as PyTorch's layers do.
func symmetricPads(n *onnx.Node) ([]int64, error) {
	if ap, ok := n.Attr("auto_pad"); ok && ap.String != "NOTSET" && ap.String != "" && ap.String != "VALID" {
		return nil, fmt.Errorf("auto_pad %s: shrink pads explicitly (export from PyTorch, which writes pads)", ap.String)
	}
	pads := attrInts(n, "pads", 0, 0, 0, 0)
	if len(pads) != 4 {
		return nil, fmt.Errorf("pads %v: want 4 values for a 2-D window", pads)
	}
	if pads[0] != pads[2] || pads[1] != pads[3] {
		return nil, fmt.Errorf("pads %v pad the two sides differently, which PyTorch's layers (and shrink's) do not", pads)
	}
	return pads[:2], nil
}

func isFinite(f float32) bool { return !math.IsInf(float64(f), 0) && !math.IsNaN(float64(f)) }

// decimal is a FLOAT attribute as the shortest decimal that rounds to it
// (0.3, not 0.30000001192092896): what the recipe that made it wrote.
func decimal(f float32) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	return v
}
