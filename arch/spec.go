// Package arch describes model architectures without building them: the recipe's
// model section and the "arch" metadata of a checkpoint. A model is a graph of
// layers, given as a list (each layer reading the previous one or the layers its
// `from` names) or by a preset that expands to such a list. Layer types register
// here with their keys, shape rule and tensors; their tensor code lives in
// package nn. arch itself imports no tensor library, so recipes validate
// instantly.
package arch

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/shrink-ml/shrink/config"
)

// Presets are the architectures a recipe can name with `arch`.
const (
	MLP    = "mlp"
	LeNet5 = "lenet5"
	ResNet = "resnet"
	LSTM   = "lstm"
)

// Spec is a model architecture: the recipe's model section. Either a preset
// (Arch and its keys) or an explicit list of Layers.
type Spec struct {
	Arch      string `json:"arch,omitempty" enum:"mlp,lenet5,resnet,lstm" doc:"a preset: mlp (fully connected, ReLU), lenet5 (two 5x5 conv + pool, three fc), resnet (CIFAR-style ResNet, torchvision names), lstm (an LSTM sequence classifier); omit it and give layers for your own network"`
	Inputs    int    `json:"inputs,omitempty" minimum:"1" doc:"mlp: input features (default: one sample's size from the data, 784 for MNIST)"`
	Hidden    Widths `json:"hidden,omitempty" doc:"mlp: hidden widths, layers fc1..fcN (default [300, 100]); lenet5: fc1 and fc2 widths (default [120, 84]); lstm: the hidden size (default 128)"`
	Channels  []int  `json:"channels,omitempty" minimum:"1" minItems:"2" maxItems:"2" doc:"lenet5: conv1 and conv2 output channels (default 6, 16)"`
	Depth     int    `json:"depth,omitempty" minimum:"8" maximum:"10000" doc:"resnet: 6n+2 layers (default 20)"`
	Width     int    `json:"width,omitempty" minimum:"1" doc:"resnet: the first stage's channels; the others have 2x and 4x (default 16)"`
	NumLayers int    `json:"num_layers,omitempty" minimum:"1" maximum:"1000" doc:"lstm: stacked LSTM layers (default 1)"`
	Classes   int    `json:"classes" minimum:"2" doc:"output classes: the last layer must output this many logits"`
	Input     Shape  `json:"input,omitempty" minimum:"1" minItems:"1" maxItems:"3" doc:"one sample's shape: [C, H, W] images, [T, F] sequences, [F] vectors (default: from the data; MNIST gives [1, 28, 28] to networks that start with a convolution, [784] otherwise)"`
	// Layers is an explicit network (no arch).
	Layers []LayerSpec `json:"layers,omitempty" minItems:"1" doc:"your own network: a list of layers, each {name, type, from, and the type's keys} (docs/MODELS.md)"`
	// ONNX names a file whose network and weights are imported.
	ONNX       string `json:"onnx,omitempty" doc:"import the network and its weights from an ONNX file (what torch.onnx.export writes; relative to the recipe)"`
	Checkpoint string `json:"checkpoint,omitempty" doc:"start from these weights: a safetensors file with PyTorch state_dict names, e.g. safetensors.torch.save_file(model.state_dict(), path) (relative to the recipe)"`
	// imported marks an ONNX spec whose file has been read into Layers,
	// Input and Classes (SetImported): it expands like an explicit list.
	imported bool
}

// SetImported fills an ONNX model section with the network read from its
// file (package onnx/onnximport): from then on it expands, validates and
// serializes as that explicit layer list, and ONNX still names the file its
// weights come from.
func (s *Spec) SetImported(layers []LayerSpec, input Shape, classes int) {
	s.Layers, s.Input, s.Classes, s.imported = layers, input, classes, true
}

// Imported reports whether an ONNX model section holds its imported layers.
func (s *Spec) Imported() bool { return s.ONNX != "" && s.imported }

// Default is the model section before the recipe's keys are read.
func Default() *Spec { return &Spec{Classes: 10} }

// IsPreset reports whether the spec names a preset rather than listing layers.
func (s *Spec) IsPreset() bool { return s.Arch != "" }

// presetKeys are the keys each preset takes (besides classes and checkpoint).
var presetKeys = map[string][]string{
	MLP:    {"inputs", "hidden"},
	LeNet5: {"inputs", "hidden", "channels"},
	ResNet: {"depth", "width", "input"},
	LSTM:   {"hidden", "num_layers", "input"},
	"":     {"input", "layers"},
}

// Validate checks the keys that only make sense together.
func (s *Spec) Validate() error {
	var errs config.Errors
	sources := 0
	for _, set := range []bool{s.Arch != "", s.Layers != nil && !s.Imported(), s.ONNX != ""} {
		if set {
			sources++
		}
	}
	switch {
	case sources == 0:
		return config.Errorf("", "say which network: a preset (arch: mlp, lenet5, resnet or lstm), your own layers (layers: [...]), or an ONNX file (onnx: model.onnx)")
	case sources > 1:
		return config.Errorf("", "give only one of arch, layers and onnx: they each define the whole network")
	}
	if s.ONNX != "" {
		if s.Checkpoint != "" {
			errs = append(errs, config.Errorf("checkpoint", "an ONNX file carries its own weights: drop checkpoint, or export the weights into the ONNX file"))
		}
		return errs.Err()
	}
	allowed := presetKeys[s.Arch]
	set := map[string]bool{
		"inputs": s.Inputs != 0, "hidden": s.Hidden != nil, "channels": s.Channels != nil,
		"depth": s.Depth != 0, "width": s.Width != 0, "num_layers": s.NumLayers != 0,
		"input": s.Input != nil, "layers": s.Layers != nil,
	}
	for _, k := range []string{"inputs", "hidden", "channels", "depth", "width", "num_layers", "input"} {
		if set[k] && !slices.Contains(allowed, k) {
			errs = append(errs, config.Errorf(k, "applies only to %s, not %s", takers(k), s.describe()))
		}
	}
	switch s.Arch {
	case LeNet5:
		if s.Inputs != 0 && s.Inputs != 784 {
			errs = append(errs, config.Errorf("inputs", "lenet5 takes 1x28x28 images (784 inputs), not %d", s.Inputs))
		}
		if s.Hidden != nil && len(s.Hidden) != 2 {
			errs = append(errs, config.Errorf("hidden", "lenet5 has two hidden fc layers, got %d widths", len(s.Hidden)))
		}
	case ResNet:
		if s.Depth != 0 && (s.Depth-2)%6 != 0 {
			errs = append(errs, config.Errorf("depth", "a CIFAR-style ResNet has 6n+2 layers (8, 14, 20, 32, 44, 56, 110), not %d", s.Depth))
		}
	case LSTM:
		if len(s.Hidden) > 1 {
			errs = append(errs, config.Errorf("hidden", "an lstm has one hidden size (num_layers stacks it), got %d widths", len(s.Hidden)))
		}
	}
	return errs.Err()
}

// takers lists the presets (or the explicit list) that take a key.
func takers(key string) string {
	var out []string
	for _, a := range []string{MLP, LeNet5, ResNet, LSTM, ""} {
		if slices.Contains(presetKeys[a], key) {
			if a == "" {
				a = "explicit layer lists"
			}
			out = append(out, a)
		}
	}
	return strings.Join(out, " and ")
}

func (s *Spec) describe() string {
	if s.Arch != "" {
		return "arch " + s.Arch
	}
	return "an explicit layer list"
}

// Normalized fills a preset's implicit keys (LeNet-300-100 for an mlp without
// hidden, LeNet-5's widths, ResNet-20 at width 16, a 128-unit LSTM). Checkpoint
// and ONNX are dropped: the result describes the network alone.
func (s Spec) Normalized() Spec {
	s.Checkpoint, s.ONNX = "", ""
	s.Hidden = slices.Clone(s.Hidden)
	s.Channels = slices.Clone(s.Channels)
	s.Input = slices.Clone(s.Input)
	s.Layers = slices.Clone(s.Layers)
	switch s.Arch {
	case MLP:
		if s.Hidden == nil {
			s.Hidden = Widths{300, 100}
		}
	case LeNet5:
		s.Inputs = 784
		if s.Channels == nil {
			s.Channels = []int{6, 16}
		}
		if s.Hidden == nil {
			s.Hidden = Widths{120, 84}
		}
	case ResNet:
		if s.Depth == 0 {
			s.Depth = 20
		}
		if s.Width == 0 {
			s.Width = 16
		}
	case LSTM:
		if s.Hidden == nil {
			s.Hidden = Widths{128}
		}
		if s.NumLayers == 0 {
			s.NumLayers = 1
		}
	}
	return s
}

// JSON is the canonical form stored in checkpoints' "arch" metadata and hashed
// into stage keys. mlp and lenet5 keep the form they had before models became
// graphs, so their checkpoints and keys stay valid.
func (s Spec) JSON() string {
	b, err := json.Marshal(s.Normalized())
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Parse reads the "arch" metadata of a checkpoint.
func Parse(js string) (Spec, error) {
	var raw map[string]any
	if err := json.Unmarshal([]byte(js), &raw); err != nil {
		return Spec{}, fmt.Errorf("arch metadata: %w", err)
	}
	s := Default()
	if errs := config.Decode(normalizeJSON(raw).(map[string]any), s); len(errs) > 0 {
		return Spec{}, fmt.Errorf("arch metadata: %w", errs)
	}
	if _, err := s.Graph(); err != nil {
		return Spec{}, fmt.Errorf("arch metadata: %w", err)
	}
	return s.Normalized(), nil
}

// Widths is a list of layer widths that may be written as one number
// (`hidden: 128` for an lstm) or a list (`hidden: [300, 100]`).
type Widths []int

// DecodeConfig reads an integer or a list of integers, each at least 1.
func (w *Widths) DecodeConfig(raw any) error {
	one := func(path string, x any) (int, error) {
		n, ok := config.AsInt(x)
		if !ok || n < 1 || n > 1<<31 {
			return 0, config.Errorf(path, "a width is a whole number of at least 1, not %s", config.Describe(x))
		}
		return int(n), nil
	}
	if items, ok := raw.([]any); ok {
		if len(items) == 0 {
			return config.Errorf("", "an empty list: give at least one width (omit the key for the default)")
		}
		var errs config.Errors
		out := make(Widths, 0, len(items))
		for i, x := range items {
			n, err := one(fmt.Sprint(i), x)
			if err != nil {
				errs = append(errs, config.AsErrors(err)...)
			}
			out = append(out, n)
		}
		*w = out
		return errs.Err()
	}
	n, err := one("", raw)
	if err != nil {
		return err
	}
	*w = Widths{n}
	return nil
}

// ConfigSchema accepts a width or a list of widths.
func (Widths) ConfigSchema() map[string]any {
	// One schema for both forms (minimum applies to the number, items to the
	// list), so an error points at the bad item rather than at two forms.
	return map[string]any{"type": []any{"integer", "array"}, "minimum": 1, "minItems": 1,
		"items": map[string]any{"type": "integer", "minimum": 1}}
}
