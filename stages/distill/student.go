package distill

import (
	"fmt"
	"math/rand/v2"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// Student is a new student architecture: the recipe model's keys, every one
// optional, without checkpoint (a student trained from scratch). Keys left out
// are the recipe model's; for another family than the recipe's, hidden and
// channels default to the family's own widths.
type Student struct {
	Arch     string `json:"arch,omitempty" enum:"mlp,lenet5" doc:"model family (default: the recipe model's)"`
	Inputs   int    `json:"inputs,omitempty" minimum:"1" doc:"mlp: input features (default: the recipe model's)"`
	Hidden   []int  `json:"hidden,omitempty" minimum:"1" minItems:"1" doc:"hidden widths: mlp layers fc1..fcN; lenet5 fc1 and fc2 widths (default: the recipe model's, or for another family its own: 300, 100 for mlp, 120, 84 for lenet5)"`
	Channels []int  `json:"channels,omitempty" minimum:"1" minItems:"2" maxItems:"2" doc:"lenet5: conv1 and conv2 output channels (default: the recipe model's, or 6, 16)"`
	Classes  int    `json:"classes,omitempty" minimum:"2" doc:"output classes (default: the recipe model's; the teacher's must match)"`
}

// Validate checks the keys that make sense only for one family, when the family
// is given; the rest is checked against the recipe's model when the stage runs.
func (s *Student) Validate() error {
	if s.Arch == "" {
		return nil
	}
	return s.spec(arch.Spec{Arch: s.Arch, Inputs: 784, Classes: 10}).Validate()
}

// spec fills what the student leaves out from the recipe's model.
func (s *Student) spec(recipe arch.Spec) *arch.Spec {
	base := recipe.Normalized()
	out := &arch.Spec{Arch: s.Arch, Inputs: s.Inputs, Hidden: s.Hidden, Channels: s.Channels, Classes: s.Classes}
	if out.Arch == "" {
		out.Arch = base.Arch
	}
	if out.Arch == base.Arch {
		// The recipe's family: what the student leaves out is the recipe model's.
		if out.Hidden == nil {
			out.Hidden = base.Hidden
		}
		if out.Channels == nil {
			out.Channels = base.Channels
		}
	}
	if out.Inputs == 0 && out.Arch == "mlp" {
		out.Inputs = base.Inputs
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
	return model.New(*spec, rand.New(stages.Stream(ctx.Seed, "model-init"))), nil
}
