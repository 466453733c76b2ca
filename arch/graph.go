package arch

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/shrink-ml/shrink/config"
)

// ModelInput is the index Node.Inputs uses for the model's own input.
const ModelInput = -1

// Graph is a model expanded to its layers, each input resolved and each shape
// inferred.
type Graph struct {
	Input   Shape
	Classes int
	Nodes   []*Node
}

// Node is one layer of a Graph.
type Node struct {
	LayerSpec
	Index  int
	Inputs []int // the nodes it reads, ModelInput for the model's input
	In     []Shape
	Out    Shape
}

// Label names the layer for messages: its name, or its position and type.
func (n *Node) Label() string {
	if n.Name != "" {
		return n.Name
	}
	return fmt.Sprintf("layer %d (%s)", n.Index, n.Type)
}

// Tensors lists the layer's state_dict entries.
func (n *Node) Tensors() []Tensor { return n.Config.Tensors(n.In) }

// TensorName is the state_dict name of one of its tensors.
func (n *Node) TensorName(suffix string) string { return n.Name + "." + suffix }

// MACs is the layer's multiply-accumulates per sample.
func (n *Node) MACs() int64 { return n.Config.MACs(n.In, n.Out) }

// Params counts the layer's learnable values (what PyTorch's parameters()
// holds: weights and params, not buffers).
func (n *Node) Params() int64 {
	var total int64
	for _, t := range n.Tensors() {
		if t.Role != Buffer {
			total += int64(Shape(t.Shape).Size())
		}
	}
	return total
}

// Node finds a layer by name.
func (g *Graph) Node(name string) *Node {
	for _, n := range g.Nodes {
		if n.Name != "" && n.Name == name {
			return n
		}
	}
	return nil
}

// Output is the layer producing the logits.
func (g *Graph) Output() *Node { return g.Nodes[len(g.Nodes)-1] }

// Consumers lists the nodes that read node i's output.
func (g *Graph) Consumers(i int) []*Node {
	var out []*Node
	for _, n := range g.Nodes {
		if slices.Contains(n.Inputs, i) {
			out = append(out, n)
		}
	}
	return out
}

// Params and MACs total the graph's.
func (g *Graph) Params() int64 {
	var total int64
	for _, n := range g.Nodes {
		total += n.Params()
	}
	return total
}

// MACs totals the multiply-accumulates per sample.
func (g *Graph) MACs() int64 {
	var total int64
	for _, n := range g.Nodes {
		total += n.MACs()
	}
	return total
}

// InputShape is one sample's shape.
func (s Spec) InputShape() Shape {
	switch s.Arch {
	case MLP:
		return Shape{s.Inputs}
	case LeNet5:
		return Shape{1, 28, 28}
	}
	return s.Input
}

// Features is the number of values one sample holds.
func (s Spec) Features() int { return s.InputShape().Size() }

// InputsKey is the recipe key that sets the input shape, for messages.
func (s Spec) InputsKey() string {
	switch s.Arch {
	case MLP:
		return "model.inputs"
	case LeNet5:
		return "model.arch" // lenet5 takes 1x28x28 images
	}
	return "model.input"
}

// Resolve fills what the model section leaves to the data: an mlp's inputs and
// the other networks' input shape, from one sample's shape as the data gives
// it. Networks that do not start with a convolution see images flattened
// (MNIST's [1, 28, 28] becomes [784]), as the model section's doc says.
//
// Without a sample shape (no data section), an mlp keeps the 784 inputs it
// has always defaulted to.
func (s *Spec) Resolve(sample Shape) {
	if len(sample) == 0 {
		if s.Arch == MLP && s.Inputs == 0 {
			s.Inputs = 784
		}
		return
	}
	switch s.Arch {
	case MLP:
		if s.Inputs == 0 {
			s.Inputs = sample.Size()
		}
	case LeNet5:
	case ResNet, LSTM:
		if s.Input == nil {
			s.Input = slices.Clone(sample)
		}
	default:
		if s.Input != nil || s.ONNX != "" {
			return
		}
		s.Input = slices.Clone(sample)
		if len(sample) == 3 && (len(s.Layers) == 0 || s.Layers[0].Type != "conv2d") {
			s.Input = Shape{sample.Size()}
		}
	}
}

// List is the model as a layer list: the explicit one, or the preset's
// expansion.
func (s Spec) List() ([]LayerSpec, error) {
	n := s.Normalized()
	switch n.Arch {
	case "":
		return n.Layers, nil
	case MLP:
		return mlpLayers(n), nil
	case LeNet5:
		return lenet5Layers(n), nil
	case ResNet:
		return resnetLayers(n), nil
	case LSTM:
		return lstmLayers(n), nil
	}
	return nil, config.Errorf("arch", "unknown arch %q (mlp, lenet5, resnet, lstm)", s.Arch)
}

// Graph expands the spec and infers every layer's shapes. Errors are
// config.Errors whose paths name the model section's keys (layers.3.out,
// classes, input), so the pipeline can place them in the recipe.
func (s Spec) Graph() (*Graph, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.ONNX != "" && !s.Imported() {
		return nil, config.Errorf("onnx", "the ONNX file has not been imported yet")
	}
	list, err := s.List()
	if err != nil {
		return nil, err
	}
	in := s.InputShape()
	if len(in) == 0 || in.Size() == 0 {
		return nil, config.Errorf("input", "one sample's shape is not known: give input (like [1, 28, 28] or [784]) or a data section it can come from")
	}
	for _, d := range in {
		if d < 1 {
			return nil, config.Errorf("input", "%v: every dimension must be at least 1", in)
		}
	}
	g := &Graph{Input: slices.Clone(in), Classes: s.Classes}
	// Presets are built by this package: an error in one is a bad key value
	// (a width of 0, an input too small for lenet5), reported at arch.
	at := func(i int, key string) string {
		if s.Arch != "" {
			return "arch"
		}
		return config.Join("layers."+strconv.Itoa(i), key)
	}
	names := map[string]int{}
	var errs config.Errors
	for i, l := range list {
		if l.invalid != nil {
			return nil, config.Errorf(at(i, ""), "%v", l.invalid)
		}
		n := &Node{LayerSpec: l, Index: i}
		t, _ := LayerTypeOf(l.Type)
		if l.Name != "" {
			if j, dup := names[l.Name]; dup {
				errs = append(errs, config.Errorf(at(i, "name"), "layer name %q is already layer %d's: names are PyTorch module paths and must be unique", l.Name, j))
			}
			names[l.Name] = i
		}
		switch {
		case len(l.From) == 0 && i == 0:
			n.Inputs = []int{ModelInput}
		case len(l.From) == 0:
			n.Inputs = []int{i - 1}
		default:
			for k, f := range l.From {
				j, ok := names[f]
				if !ok || j == i {
					errs = append(errs, config.Errorf(at(i, "from."+strconv.Itoa(k)), "%s", fromError(f, list[:i], list)))
					continue
				}
				n.Inputs = append(n.Inputs, j)
			}
		}
		if t.Inputs == Many && len(l.From) < 2 {
			errs = append(errs, config.Errorf(at(i, "from"), "%s combines two or more layers: list them, like from: [a, b]", l.Type))
		}
		if t.Inputs == 1 && len(l.From) > 1 {
			errs = append(errs, config.Errorf(at(i, "from"), "%s reads one layer, not %d", l.Type, len(l.From)))
		}
		if t.ModelInput && (i > 0 || len(l.From) > 0) {
			errs = append(errs, config.Errorf(at(i, ""), "%s reads the model's input (%s), so it must be the first layer, without from", l.Type, t.ModelInputWhat))
		}
		if len(errs) > 0 {
			g.Nodes = append(g.Nodes, n)
			continue
		}
		for _, j := range n.Inputs {
			if j == ModelInput {
				n.In = append(n.In, g.Input)
			} else {
				n.In = append(n.In, g.Nodes[j].Out)
			}
		}
		out, err := l.Config.Shape(n.In)
		if err != nil {
			errs = append(errs, config.Errorf(at(i, ""), "%s (%s) on input %s: %v", n.Label(), l.Type, shapesString(n.In), err))
			return nil, errs
		}
		n.Out = out
		if why := tooLarge(n); why != "" {
			errs = append(errs, config.Errorf(at(i, ""), "%s (%s) on input %s: %s", n.Label(), l.Type, shapesString(n.In), why))
			return nil, errs
		}
		if l.Name == "" && len(n.Tensors()) > 0 {
			errs = append(errs, config.Errorf(at(i, ""), "layer %d (%s) has tensors: give it a name (its PyTorch module path), so they are NAME.weight, ...", i, l.Type))
		}
		g.Nodes = append(g.Nodes, n)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if len(g.Nodes) == 0 {
		return nil, config.Errorf("layers", "the network has no layers")
	}
	if out := g.Output().Out; !slices.Equal(out, Shape{s.Classes}) {
		return nil, config.Errorf("classes", "the last layer (%s) outputs %s per sample, but the model needs %d logits: end with a linear layer of out: %d (after a flatten or a pooling for images)", g.Output().Label(), out, s.Classes, s.Classes)
	}
	return g, nil
}

// MaxValues bounds the values of one tensor and of one sample's output of a
// layer: 2^46, 256 TiB of float32, more than Go allocates in one piece. Sizes
// come from the recipe (out, hidden, input) with no other upper bound, and
// beyond this one they overflow an int on the way to an allocation, or fail
// it with a panic. Smaller ones that do not fit this machine are the run's
// memory check's to refuse (runner.MemoryProblem), with its estimate.
const MaxValues = 1 << 46

// tooLarge says which of a node's tensors, or its output, holds more than
// MaxValues values, counted in float64 so that no size overflows; "" if none.
func tooLarge(n *Node) string {
	size := func(s []int) float64 {
		p := 1.0
		for _, d := range s {
			p *= float64(d)
		}
		return p
	}
	for _, t := range n.Tensors() {
		if v := size(t.Shape); v > MaxValues {
			return fmt.Sprintf("its %s would hold %.3g values (shape %v), more than 2^46 (256 TiB of float32): make the layer smaller", t.Suffix, v, Shape(t.Shape))
		}
	}
	if v := size(n.Out); v > MaxValues {
		return fmt.Sprintf("its output would hold %.3g values per sample (shape %v), more than 2^46 (256 TiB of float32): make the layer smaller", v, n.Out)
	}
	return ""
}

func fromError(name string, before, all []LayerSpec) string {
	var known []string
	for _, l := range before {
		if l.Name != "" {
			known = append(known, l.Name)
		}
	}
	for _, l := range all[len(before):] {
		if l.Name == name {
			return fmt.Sprintf("layer %q comes later: a layer reads only layers listed before it", name)
		}
	}
	if len(known) == 0 {
		return fmt.Sprintf("no layer is named %q before this one", name)
	}
	return fmt.Sprintf("no layer is named %q before this one (earlier layers: %s)%s", name, strings.Join(known, ", "), config.DidYouMean(name, known))
}

func shapesString(in []Shape) string {
	parts := make([]string, len(in))
	for i, s := range in {
		parts[i] = s.String()
	}
	return strings.Join(parts, " and ")
}

// WeightLayers lists the layers with weights (what compressions act on).
func (g *Graph) WeightLayers() []*Node {
	var out []*Node
	for _, n := range g.Nodes {
		for _, t := range n.Tensors() {
			if t.Role == Weight {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// LayerNames lists the names of the layers with weights in forward order (none
// when the spec does not expand).
func (s Spec) LayerNames() []string {
	g, err := s.Graph()
	if err != nil {
		return nil
	}
	var names []string
	for _, n := range g.WeightLayers() {
		names = append(names, n.Name)
	}
	return names
}
