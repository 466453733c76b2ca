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
	"github.com/shrink-ml/shrink/pipeline"
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
	FreezeBNAfter int `json:"freeze_bn_after,omitempty" minimum:"0" doc:"batch norms right after quantized convolutions train with batch statistics for this many epochs, then use and keep their running statistics (torch.ao's freeze_bn_stats) for the rest; 0, the default, freezes them from the start. They fold into their convolutions at the end, unless keep_batchnorm"`
}

// defaults: static mode, so the input ranges are learned with the weights; one
// epoch of Adam at lr 1e-4, a fine-tuning rate.
func defaults() *Config {
	c := &Config{Settings: quantize.DefaultSettings("static"), Training: stages.DefaultTraining(1)}
	c.Optimizer.LR = 1e-4
	return c
}

var (
	_ config.Validator     = (*Config)(nil)
	_ pipeline.ArchChanger = (*Config)(nil)
)

// UsesData reports that qat trains.
func (c *Config) UsesData() bool { return true }

// Run marks the layers, calibrates static input ranges to start the moving
// averages from, trains, and leaves the layers quantized from the final weights.
func (c *Config) Run(ctx *stages.Context) (*stages.Result, error) {
	m, layers, _, err := c.Start(ctx, false)
	if err != nil {
		return nil, err
	}
	// The batch norms after quantized convolutions train on their own
	// meanwhile, frozen after freeze_bn_after epochs, as torch.ao's ConvBn
	// modules do; then they fold (unless keep_batchnorm).
	names := make([]string, len(layers))
	for i, l := range layers {
		names[i] = l.Name
	}
	_, pairs, err := quantize.FoldArch(m.Spec, names)
	if err != nil {
		return nil, err
	}
	m.FreezeStats = map[string]int{}
	for bn := range pairs {
		m.FreezeStats[bn] = c.FreezeBNAfter
	}
	if err := ctx.Train("qat", m, c.Training, model.Loss{}, nil); err != nil {
		return nil, err
	}
	m.FreezeStats = nil
	folded, err := c.Fold(ctx, m)
	if err != nil {
		return nil, err
	}
	if c.Epochs == 0 || len(folded) > 0 {
		// Training requantizes when it runs; folding moves the weights off
		// their grid (by a per-channel factor: the same integers, per channel).
		quantize.Snap(layers)
	}
	metrics, err := quantize.Metrics(ctx, &c.Settings, layers, m)
	if err != nil {
		return nil, err
	}
	metrics["epochs"] = c.Epochs
	if len(folded) > 0 {
		metrics["folded_batchnorms"] = folded
	}
	if len(pairs) > 0 {
		metrics["freeze_bn_after"] = c.FreezeBNAfter
	}
	return &stages.Result{Model: m, Metrics: metrics}, nil
}
