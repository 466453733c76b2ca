// Package qat is the qat stage: quantization-aware training. The layers train
// with fake quantization in the graph (forward: the quantize-dequantize of the
// spec; backward: PyTorch FakeQuantize's clipped straight-through gradient),
// weight ranges observed every step and static input ranges tracked by moving
// average, and end quantized exactly as the quantize stage would quantize the
// final weights.
package qat

import (
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
	"github.com/shrink-ml/shrink/stages/quantize"
)

func init() {
	stages.Register(stages.Type{
		Name:    "qat",
		Summary: "quantization-aware training: fine-tune with fake-quantized weights and inputs, then quantize as the quantize stage does",
		New:     func() stages.Config { return defaults() },
	})
}

// Config is the qat stage's keys: the quantize keys plus epochs, optimizer and
// batch_size.
type Config struct {
	quantize.Settings
	stages.Training
}

// defaults: static mode, so the input ranges are learned with the weights; one
// epoch of Adam at lr 1e-4, a fine-tuning rate.
func defaults() *Config {
	c := &Config{Settings: quantize.DefaultSettings("static"), Training: stages.DefaultTraining(1)}
	c.Optimizer.LR = 1e-4
	return c
}

var _ config.Validator = (*Config)(nil)

// UsesData reports that qat trains.
func (c *Config) UsesData() bool { return true }

// Run marks the layers, calibrates static input ranges to start the moving
// averages from, trains, and leaves the layers quantized from the final weights.
func (c *Config) Run(ctx *stages.Context) (*stages.Result, error) {
	m, layers, err := c.Start(ctx)
	if err != nil {
		return nil, err
	}
	if err := ctx.Train("qat", m, c.Training, model.Loss{}, nil); err != nil {
		return nil, err
	}
	if c.Epochs == 0 {
		quantize.Snap(layers) // training requantizes when it runs
	}
	metrics, err := quantize.Metrics(ctx, &c.Settings, layers, m)
	if err != nil {
		return nil, err
	}
	metrics["epochs"] = c.Epochs
	return &stages.Result{Model: m, Metrics: metrics}, nil
}
