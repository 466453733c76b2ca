// Package quantize is the quantize stage: post-training quantization of weights
// to 2 to 8 bit integers with the scales and zero points torch.ao's observers
// compute, and of layer inputs, per batch (dynamic) or with ranges calibrated on
// training data (static). Package qat reuses its Settings.
package quantize

import (
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
)

func init() {
	stages.Register(stages.Type{
		Name:    "quantize",
		Summary: "post-training quantization: weights to 2-8 bit integers as torch.ao computes them; inputs quantized per batch (dynamic) or calibrated (static)",
		New:     func() stages.Config { return &Config{Settings: DefaultSettings("dynamic")} },
	})
}

// Config is the quantize stage's keys.
type Config struct {
	Settings
}

// Trains is false: static quantization reads data to calibrate, never trains.
func (c *Config) Trains() bool { return false }

var (
	_ config.Validator      = (*Config)(nil)
	_ pipeline.ModelChecker = (*Config)(nil)
	_ pipeline.ArchChanger  = (*Config)(nil)
)

// Run quantizes the start model: static input ranges are calibrated on the float
// model first (Start), then the weights are snapped to their integers.
func (c *Config) Run(ctx *stages.Context) (*stages.Result, error) {
	m, layers, folded, err := c.Start(ctx, true)
	if err != nil {
		return nil, err
	}
	Snap(layers)
	for _, l := range layers {
		ctx.Log.Info().Str("layer", l.Name).Str("weights", l.Quant.String()).Str("inputs", c.Mode+" "+l.Input.Spec.String()).Msg("quantized")
	}
	metrics, err := Metrics(ctx, &c.Settings, layers, m)
	if err != nil {
		return nil, err
	}
	if len(folded) > 0 {
		metrics["folded_batchnorms"] = folded
	}
	return &stages.Result{Model: m, Metrics: metrics}, nil
}
