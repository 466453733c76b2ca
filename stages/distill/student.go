package distill

import (
	"fmt"
	"math/rand/v2"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// Student is a new student architecture: the model section's keys, every one
// optional, without checkpoint (a student trained from scratch). Keys left out
// are the recipe model's; for another preset than the recipe's, the preset's
// own defaults apply. An explicit layer list is a network of its own.
type Student struct {
	Arch      string           `json:"arch,omitempty" enum:"mlp,lenet5,resnet,lstm" doc:"a preset (default: the recipe model's, unless layers are given)"`
	Inputs    int              `json:"inputs,omitempty" minimum:"1" doc:"mlp: input features (default: the recipe model's)"`
	Hidden    arch.Widths      `json:"hidden,omitempty" doc:"mlp: hidden widths; lenet5: fc1 and fc2 widths; lstm: the hidden size (default: the recipe model's, or for another preset its own)"`
	Channels  []int            `json:"channels,omitempty" minimum:"1" minItems:"2" maxItems:"2" doc:"lenet5: conv1 and conv2 output channels (default: the recipe model's, or 6, 16)"`
	Depth     int              `json:"depth,omitempty" minimum:"8" maximum:"10000" doc:"resnet: 6n+2 layers (default: the recipe model's, or 20)"`
	Width     int              `json:"width,omitempty" minimum:"1" doc:"resnet: the first stage's channels (default: the recipe model's, or 16)"`
	NumLayers int              `json:"num_layers,omitempty" minimum:"1" maximum:"1000" doc:"lstm: stacked layers (default: the recipe model's, or 1)"`
	Layers    []arch.LayerSpec `json:"layers,omitempty" minItems:"1" doc:"the student's own network: a layer list as in the model section (its input is the recipe model's)"`
	Classes   int              `json:"classes,omitempty" minimum:"2" doc:"output classes (default: the recipe model's; the teacher's must match)"`
}

// Validate checks the keys that make sense only for one family, when the family
// is given; the rest is checked against the recipe's model when the stage runs.
func (s *Student) Validate() error {
	if s.Arch != "" && s.Layers != nil {
		return config.Errorf("layers", "give arch or layers, not both")
	}
	if s.Arch == "" {
		return nil
	}
	return s.spec(arch.Spec{Arch: s.Arch, Inputs: 784, Classes: 10}).Validate()
}

// spec fills what the student leaves out from the recipe's model.
func (s *Student) spec(recipe arch.Spec) *arch.Spec {
	base := recipe.Normalized()
	out := &arch.Spec{Arch: s.Arch, Inputs: s.Inputs, Hidden: s.Hidden, Channels: s.Channels,
		Depth: s.Depth, Width: s.Width, NumLayers: s.NumLayers, Layers: s.Layers, Classes: s.Classes}
	if out.Arch == "" && out.Layers == nil {
		out.Arch, out.Layers = base.Arch, base.Layers
	}
	if out.Arch != "" && out.Arch == base.Arch {
		// The recipe's family: what the student leaves out is the recipe model's.
		if out.Hidden == nil {
			out.Hidden = base.Hidden
		}
		if out.Channels == nil {
			out.Channels = base.Channels
		}
		if out.Depth == 0 {
			out.Depth = base.Depth
		}
		if out.Width == 0 {
			out.Width = base.Width
		}
		if out.NumLayers == 0 {
			out.NumLayers = base.NumLayers
		}
	}
	if out.Inputs == 0 && out.Arch == arch.MLP {
		out.Inputs = base.Features()
	}
	if out.Arch != arch.MLP && out.Arch != arch.LeNet5 {
		out.Input = base.InputShape()
	}
	if out.Classes == 0 {
		out.Classes = base.Classes
	}
	return out
}

// student returns the model to train: a new one of the student architecture
// (weights from the recipe seed), or the needs model, or the recipe's model.
func (c *Config) student(ctx *stages.Context) (*model.Model, error) {
	if c.Student == nil {
		return ctx.Start()
	}
	if ctx.Input != nil {
		return nil, fmt.Errorf("student: a student architecture is trained from scratch, so this stage transforms no input: remove needs (name the teacher with teacher)")
	}
	spec := c.Student.spec(ctx.Spec)
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("student: %w (the missing keys come from the recipe's model section)", err)
	}
	// The same stream as the recipe's fresh model: a student shaped like the
	// recipe's model starts from the same weights as a train stage would.
	return model.New(*spec, rand.New(stages.Stream(ctx.Seed, "model-init")))
}
