// Package train is the train stage: mini-batch training with Adam or SGD on the
// recipe's data, from the recipe's model or from the output of the stage it needs.
// Compression carried by the input model (masks, quantization, factors) stays.
package train

import (
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

func init() {
	stages.Register(stages.Type{
		Name:    "train",
		Summary: "train the model on the recipe's data (cross-entropy; Adam or SGD)",
		New:     func() stages.Config { return &Config{Training: stages.DefaultTraining(1)} },
	})
}

// Config is the train stage's keys: epochs, optimizer, batch_size.
type Config struct {
	stages.Training
}

// UsesData reports that training reads the data.
func (c *Config) UsesData() bool { return true }

// Run trains the start model.
func (c *Config) Run(ctx *stages.Context) (*stages.Result, error) {
	m, err := ctx.Start()
	if err != nil {
		return nil, err
	}
	if err := ctx.Train("train", m, c.Training, model.Loss{}, nil); err != nil {
		return nil, err
	}
	return &stages.Result{Model: m, Metrics: map[string]any{"epochs": c.Epochs}}, nil
}
