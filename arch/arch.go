// Package arch describes model architectures without building them: the recipe's
// model section and the "arch" metadata of a checkpoint. It imports no tensor
// library, so recipes validate instantly.
package arch

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/shrink-ml/shrink/config"
)

// Spec is a model architecture. For mlp, Hidden lists the hidden widths (layers
// fc1..fcN, N = len(Hidden)+1). For lenet5, Channels are the two conv widths and
// Hidden the two fully connected widths; they differ from LeNet-5's 6, 16, 120, 84
// only after structured pruning removed units.
type Spec struct {
	Arch       string `json:"arch" enum:"mlp,lenet5" doc:"model family: mlp (fully connected, ReLU) or lenet5 (two 5x5 conv + pool, three fc)"`
	Inputs     int    `json:"inputs,omitempty" minimum:"1" doc:"mlp: input features (784 for MNIST)"`
	Hidden     []int  `json:"hidden,omitempty" minimum:"1" minItems:"1" doc:"hidden widths: mlp layers fc1..fcN; lenet5 fc1 and fc2 widths (default 120, 84)"`
	Channels   []int  `json:"channels,omitempty" minimum:"1" minItems:"2" maxItems:"2" doc:"lenet5: conv1 and conv2 output channels (default 6, 16)"`
	Classes    int    `json:"classes" minimum:"2" doc:"output classes"`
	Checkpoint string `json:"checkpoint,omitempty" doc:"start from these weights: a safetensors file with PyTorch state_dict names (relative to the recipe)"`
}

// Default is the recipe's model section when it says nothing: LeNet-300-100 on MNIST.
func Default() *Spec {
	return &Spec{Arch: "mlp", Inputs: 784, Classes: 10}
}

// Validate checks the keys that only make sense together.
func (s *Spec) Validate() error {
	var errs config.Errors
	switch s.Arch {
	case "mlp":
		if s.Channels != nil {
			errs = append(errs, config.Errorf("channels", "applies only to lenet5"))
		}
		if s.Inputs == 0 {
			errs = append(errs, config.Errorf("inputs", "mlp needs the number of input features"))
		}
	case "lenet5":
		if s.Inputs != 0 && s.Inputs != 784 {
			errs = append(errs, config.Errorf("inputs", "lenet5 takes 1x28x28 images (784 inputs), not %d", s.Inputs))
		}
		if s.Hidden != nil && len(s.Hidden) != 2 {
			errs = append(errs, config.Errorf("hidden", "lenet5 has two hidden fc layers, got %d widths", len(s.Hidden)))
		}
	}
	return errs.Err()
}

// Normalized fills the architecture's implicit widths: LeNet-300-100 for an mlp
// without hidden, LeNet-5's widths for lenet5. Checkpoint is dropped.
func (s Spec) Normalized() Spec {
	s.Checkpoint = ""
	s.Hidden = slices.Clone(s.Hidden)
	s.Channels = slices.Clone(s.Channels)
	switch s.Arch {
	case "mlp":
		if s.Hidden == nil {
			s.Hidden = []int{300, 100}
		}
	case "lenet5":
		s.Inputs = 784
		if s.Channels == nil {
			s.Channels = []int{6, 16}
		}
		if s.Hidden == nil {
			s.Hidden = []int{120, 84}
		}
	}
	return s
}

// JSON is the canonical form stored in checkpoints' "arch" metadata.
func (s Spec) JSON() string {
	b, err := json.Marshal(s.Normalized())
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Parse reads the "arch" metadata of a checkpoint.
func Parse(js string) (Spec, error) {
	var s Spec
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		return s, fmt.Errorf("arch metadata: %w", err)
	}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("arch metadata: %w", err)
	}
	if s.Arch != "mlp" && s.Arch != "lenet5" {
		return s, fmt.Errorf("arch metadata: unknown arch %q", s.Arch)
	}
	return s.Normalized(), nil
}

// Kind tells linear layers from convolutions.
type Kind string

const (
	Linear Kind = "linear"
	Conv   Kind = "conv"
)

// Layer is one weight layer in PyTorch terms: a Linear(In, Out) or a
// Conv2d(In, Out, Kernel) followed (except the last) by ReLU.
type Layer struct {
	Name    string
	Kind    Kind
	In, Out int
	Kernel  int // conv only
	Pool    int // conv only: max pooling window after the ReLU
	OutSide int // conv only: the side of its (square) output map, before pooling
}

// WeightShape is the layer's PyTorch weight shape: [out, in] or [out, in, k, k].
func (l Layer) WeightShape() []int {
	if l.Kind == Conv {
		return []int{l.Out, l.In, l.Kernel, l.Kernel}
	}
	return []int{l.Out, l.In}
}

// FanIn is the number of inputs of one output unit.
func (l Layer) FanIn() int {
	if l.Kind == Conv {
		return l.In * l.Kernel * l.Kernel
	}
	return l.In
}

// Layers lists the weight layers in forward order.
func (s Spec) Layers() []Layer {
	s = s.Normalized()
	switch s.Arch {
	case "lenet5":
		c1, c2 := s.Channels[0], s.Channels[1]
		// 28x28 images: 5x5 valid convolutions and 2x2 pooling, 28 -> 24 -> 12 -> 8 -> 4.
		conv1 := Layer{Name: "conv1", Kind: Conv, In: 1, Out: c1, Kernel: 5, Pool: 2, OutSide: 28 - 5 + 1}
		conv2 := Layer{Name: "conv2", Kind: Conv, In: c1, Out: c2, Kernel: 5, Pool: 2, OutSide: conv1.OutSide/2 - 5 + 1}
		flat := conv2.OutSide / 2
		return []Layer{
			conv1, conv2,
			{Name: "fc1", Kind: Linear, In: c2 * flat * flat, Out: s.Hidden[0]},
			{Name: "fc2", Kind: Linear, In: s.Hidden[0], Out: s.Hidden[1]},
			{Name: "fc3", Kind: Linear, In: s.Hidden[1], Out: s.Classes},
		}
	default:
		widths := append(append([]int{s.Inputs}, s.Hidden...), s.Classes)
		layers := make([]Layer, len(widths)-1)
		for i := range layers {
			layers[i] = Layer{Name: fmt.Sprintf("fc%d", i+1), Kind: Linear, In: widths[i], Out: widths[i+1]}
		}
		return layers
	}
}

// LayerNames lists the weight layers' names in forward order.
func (s Spec) LayerNames() []string {
	var names []string
	for _, l := range s.Layers() {
		names = append(names, l.Name)
	}
	return names
}

// Features is the number of values one sample holds (784 for lenet5).
func (s Spec) Features() int {
	n := 1
	for _, d := range s.InputShape() {
		n *= d
	}
	return n
}

// InputsKey is the recipe key that sets Features, for messages.
func (s Spec) InputsKey() string {
	if s.Arch == "lenet5" {
		return "model.arch" // lenet5 takes 1x28x28 images
	}
	return "model.inputs"
}

// InputShape is the shape of one sample: [features] or [1, 28, 28].
func (s Spec) InputShape() []int {
	if s.Arch == "lenet5" {
		return []int{1, 28, 28}
	}
	return []int{s.Normalized().Inputs}
}
