package arch

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/shrink-ml/shrink/config"
)

// Shape is the shape of one sample, without the batch dimension: [C, H, W] for
// images, [T, F] for sequences, [F] for vectors.
type Shape []int

// Size is the number of values the shape holds.
func (s Shape) Size() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Role says what a tensor is to training and to compression.
type Role int

const (
	// Weight is a learnable tensor the compressions act on: pruned, quantized,
	// factored (a linear or conv weight, an LSTM's weight_ih_l0, an embedding).
	Weight Role = iota
	// Param is any other learnable tensor: a bias, a norm's affine parameters.
	Param
	// Buffer is state that gradients do not train (batch norm's running
	// statistics); PyTorch counts it in state_dict() but not in parameters().
	Buffer
)

// Tensor is one state_dict entry of a layer.
type Tensor struct {
	Suffix string // after "NAME.": weight, bias, running_mean, weight_ih_l0, ...
	Shape  []int
	Role   Role
	Int64  bool // num_batches_tracked is an I64 scalar
}

// Layer is a decoded layer config: what a layer type knows without tensors.
// Implementations are structs with json/doc tags (decoded and schema'd by
// package config, like stage configs) that live with the layer type's ops in
// package nn.
type Layer interface {
	// Shape is the output shape for the inputs' shapes (one per input).
	Shape(in []Shape) (Shape, error)
	// Tensors lists the layer's state_dict entries for these input shapes, in
	// PyTorch's order.
	Tensors(in []Shape) []Tensor
	// MACs is the number of multiply-accumulates per sample.
	MACs(in []Shape, out Shape) int64
}

// Caps says which compressions apply to a layer type.
type Caps struct {
	// Quantize lists the quantization modes its weights support.
	Static, Dynamic, QAT bool
	// Factor: lowrank may replace its weight by two factors (NAME.0, NAME.1).
	Factor bool
	// Adapter: a LoRA adapter can attach to it.
	Adapter bool
	// Channels: its weight's dim 0 are output units (rows, channels) that
	// structured pruning removes whole.
	Channels bool
}

// Compressible is implemented by layers some compression applies to.
type Compressible interface {
	Caps() Caps
}

// Many is LayerType.Inputs for a layer that takes two or more inputs.
const Many = -1

// LayerType is a kind of layer: linear, conv2d, batchnorm2d, ...
type LayerType struct {
	Name    string
	Summary string // one line, for the schema and docs/MODELS.md
	// New returns a pointer to a config holding the defaults; no side effects.
	New func() Layer
	// Inputs is how many inputs it reads: 1, or Many (add, concat).
	Inputs int
	// ModelInput marks a type that reads only the model's input, which is not
	// features but, as ModelInputWhat says, something no layer outputs
	// (embedding: integer token ids). Such a layer must come first.
	ModelInput     bool
	ModelInputWhat string
}

var layerTypes = map[string]LayerType{}

// RegisterLayer adds a layer type; layer packages call it in init.
func RegisterLayer(t LayerType) {
	if _, dup := layerTypes[t.Name]; dup {
		panic("arch: layer type " + t.Name + " registered twice")
	}
	if t.Inputs == 0 {
		t.Inputs = 1
	}
	layerTypes[t.Name] = t
}

// LayerTypeOf finds a registered layer type.
func LayerTypeOf(name string) (LayerType, bool) {
	t, ok := layerTypes[name]
	return t, ok
}

// LayerTypes lists the registered layer types by name.
func LayerTypes() []LayerType {
	out := make([]LayerType, 0, len(layerTypes))
	for _, n := range slices.Sorted(maps.Keys(layerTypes)) {
		out = append(out, layerTypes[n])
	}
	return out
}

// LayerSpec is one entry of the model section's layer list: a name (a PyTorch
// module path; optional for parameter-free layers), a type, where its input
// comes from, and the type's own keys.
type LayerSpec struct {
	Name   string
	Type   string
	From   []string // empty: the previous layer's output
	Config Layer
	// invalid is why NewLayer could not build the layer (a type this build
	// does not register); Graph reports it.
	invalid error
}

// genericLayerKeys are the keys every layer accepts besides its type's.
var genericLayerKeys = []string{"name", "type", "from"}

// NewLayer builds a LayerSpec from a type and its keys, as the recipe would
// write them (presets and tests use it). A layer that does not decode is kept
// with its problem, which Graph reports.
func NewLayer(name, typ string, keys map[string]any, from ...string) LayerSpec {
	raw := map[string]any{"type": typ}
	if name != "" {
		raw["name"] = name
	}
	for k, v := range keys {
		raw[k] = v
	}
	var l LayerSpec
	if err := l.DecodeConfig(raw); err != nil {
		return LayerSpec{Name: name, Type: typ, From: from, invalid: fmt.Errorf("layer %s (%s): %v", name, typ, err)}
	}
	l.From = from
	return l
}

// DecodeConfig reads {name, type, from, keys...}, decoding the keys into the
// type's config (config.Decoder).
func (l *LayerSpec) DecodeConfig(raw any) error {
	m, ok := raw.(map[string]any)
	if !ok {
		return config.Errorf("", "a layer is a mapping with at least a type, like {name: fc1, type: linear, out: 10}, not %s", config.Describe(raw))
	}
	var errs config.Errors
	typ, ok := m["type"].(string)
	if !ok {
		names := make([]string, 0, len(layerTypes))
		for _, t := range LayerTypes() {
			names = append(names, t.Name)
		}
		return config.Errorf("type", "missing or not a string: each layer needs a type (%s)", strings.Join(names, ", "))
	}
	t, ok := layerTypes[typ]
	if !ok {
		names := slices.Sorted(maps.Keys(layerTypes))
		return config.Errorf("type", "unknown layer type %q (known: %s)%s", typ, strings.Join(names, ", "), config.DidYouMean(typ, names))
	}
	l.Type = typ
	if n, present := m["name"]; present {
		if s, ok := n.(string); ok && s != "" {
			l.Name = s
		} else {
			errs = append(errs, config.Errorf("name", "a layer name is a non-empty string (a PyTorch module path like layer1.0.conv1)"))
		}
	}
	l.From = nil
	switch f := m["from"].(type) {
	case nil:
	case string:
		l.From = []string{f}
	case []any:
		for i, x := range f {
			s, ok := x.(string)
			if !ok || s == "" {
				errs = append(errs, config.Errorf("from."+strconv.Itoa(i), "a layer name, not %s", config.Describe(x)))
				continue
			}
			l.From = append(l.From, s)
		}
	default:
		errs = append(errs, config.Errorf("from", "a layer name or a list of names, not %s", config.Describe(f)))
	}
	keys := map[string]any{}
	for k, v := range m {
		if !slices.Contains(genericLayerKeys, k) {
			keys[k] = v
		}
	}
	l.Config = t.New()
	errs = append(errs, config.Decode(keys, l.Config)...)
	return errs.Err()
}

// MarshalJSON writes the layer as the recipe would: name, type, from and every
// key of its config (defaults included), so equal layers have equal JSON.
func (l LayerSpec) MarshalJSON() ([]byte, error) {
	out := map[string]any{"type": l.Type}
	if l.Name != "" {
		out["name"] = l.Name
	}
	switch len(l.From) {
	case 0:
	case 1:
		out["from"] = l.From[0]
	default:
		out["from"] = l.From
	}
	if l.Config != nil {
		b, err := json.Marshal(l.Config)
		if err != nil {
			return nil, err
		}
		var keys map[string]any
		if err := json.Unmarshal(b, &keys); err != nil {
			return nil, err
		}
		maps.Copy(out, keys)
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON wrote (checkpoint metadata).
func (l *LayerSpec) UnmarshalJSON(b []byte) error {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	return l.DecodeConfig(normalizeJSON(raw))
}

// normalizeJSON turns encoding/json's float64 numbers back into the ints the
// config decoder expects where they are whole.
func normalizeJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeJSON(e)
		}
	case float64:
		if x == float64(int(x)) && x < 1<<53 && x > -(1<<53) {
			return int(x)
		}
	}
	return v
}

// ConfigSchema describes a layer: the generic keys and, by type, its own.
func (LayerSpec) ConfigSchema() map[string]any {
	names, cases := []string{}, []any{}
	for _, t := range LayerTypes() {
		names = append(names, t.Name)
		s := config.Schema(t.New())
		props := s["properties"].(map[string]any)
		for k, p := range genericLayerSchema() {
			props[k] = p
		}
		s["description"] = t.Summary
		cases = append(cases, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"type": map[string]any{"const": t.Name}}, "required": []any{"type"}},
			"then": s,
		})
	}
	props := genericLayerSchema()
	props["type"] = map[string]any{"enum": names, "description": "the layer type (docs/MODELS.md)"}
	return map[string]any{"type": "object", "required": []any{"type"}, "properties": props, "allOf": cases}
}

func genericLayerSchema() map[string]any {
	return map[string]any{
		"name": map[string]any{"type": "string", "minLength": 1, "description": "the PyTorch module path: its tensors are NAME.weight, NAME.bias, ... (optional for layers without tensors)"},
		"type": map[string]any{"type": "string", "description": "the layer type"},
		"from": map[string]any{
			"description": "the layer(s) whose output this one reads (default: the previous layer); add and concat take a list",
			"oneOf": []any{
				map[string]any{"type": "string"},
				map[string]any{"type": "array", "minItems": 1, "items": map[string]any{"type": "string"}},
			},
		},
	}
}

// Caps is what compressions apply to the layer (none for most types).
func (l LayerSpec) Caps() Caps {
	if c, ok := l.Config.(Compressible); ok {
		return c.Caps()
	}
	return Caps{}
}

// Factorable is implemented by layers whose weight lowrank can replace with
// two factors: NAME.0.weight (first) then NAME.1.weight (second), the bias
// moving to NAME.1.bias.
type Factorable interface {
	FactorShapes(in []Shape, rank int) (first, second []int)
}
