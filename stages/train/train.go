// Package train is the train stage: mini-batch training with Adam or SGD on the
// recipe's data, from the recipe's model or from the output of the stage it needs.
// Compression carried by the input model (masks, quantization, factors) stays.
// With layers, only those train: the others are frozen (fine-tuning a head).
package train

import (
	"fmt"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
)

func init() {
	stages.Register(stages.Type{
		Name:    "train",
		Summary: "train the model on the recipe's data (cross-entropy; Adam or SGD)",
		New:     func() stages.Config { return &Config{Training: stages.DefaultTraining(1)} },
	})
}

// Config is the train stage's keys: epochs, optimizer, batch_size, layers.
type Config struct {
	stages.Training
	Layers stages.LayerNames `json:"layers,omitempty" doc:"train only these layers (names, globs, re: patterns; default: every layer); the others stay exactly as they are, batch norm statistics included: fine-tuning a classifier head alone"`
}

var (
	_ config.Validator      = (*Config)(nil)
	_ pipeline.ModelChecker = (*Config)(nil)
)

// Validate rejects a layer listed twice.
func (c *Config) Validate() error { return config.AsErrors(c.Layers.Validate()).Prefix("layers").Err() }

// CheckModel checks that layers names layers with learnable tensors.
func (c *Config) CheckModel(in arch.Spec) error {
	return stages.CheckLayers(in, "layers", c.Layers, stages.AnyLearnable).Err()
}

// UsesData reports that training reads the data.
func (c *Config) UsesData() bool { return true }

// Run trains the start model.
func (c *Config) Run(ctx *stages.Context) (*stages.Result, error) {
	m, err := ctx.Start()
	if err != nil {
		return nil, err
	}
	frozen, err := c.freeze(m)
	if err != nil {
		return nil, err
	}
	metrics := stages.TrainableMetrics(m, c.Training)
	metrics["epochs"] = c.Epochs
	if err := ctx.Train("train", m, c.Training, model.Loss{}, nil); err != nil {
		return nil, err
	}
	for _, l := range frozen {
		l.Frozen = model.Trainable // freezing is this stage's, not the model's
	}
	return &stages.Result{Model: m, Metrics: metrics}, nil
}

// freeze freezes every layer with learnable tensors that layers does not
// name, whole (batch norm statistics included), and returns them.
func (c *Config) freeze(m *model.Model) ([]*model.Layer, error) {
	if len(c.Layers) == 0 {
		return nil, nil
	}
	for _, l := range m.Layers {
		if l.Adapter != nil || l.Frozen != model.Trainable {
			return nil, fmt.Errorf("layers: layer %s of the input model is frozen or carries a LoRA adapter (a lora stage's output): train it without layers, or merge the adapters first (lora's merge: true)", l.Label())
		}
	}
	names, err := stages.AnyLearnable.Resolve(m.Graph, c.Layers)
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	var frozen []*model.Layer
	for _, l := range m.Layers {
		if l.Node.Params() > 0 && !keep[l.Name] {
			l.Frozen = model.FrozenAll
			frozen = append(frozen, l)
		}
	}
	return frozen, nil
}
