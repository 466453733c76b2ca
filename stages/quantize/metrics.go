package quantize

import (
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/export"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// Metrics are what a quantizing stage reports besides the runner's standard ones
// (which already hold per-layer bits, the real size_bytes and the accuracy):
// the mode, each quantized layer's spec, the size of the same model with F32
// weights, and the input model's accuracy for comparison.
func Metrics(ctx *stages.Context, s *Settings, layers []*model.Layer, m *model.Model) (map[string]any, error) {
	specs := map[string]string{}
	for _, l := range layers {
		specs[l.Name] = l.Quant.String()
	}
	f32, err := floatSize(m)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"mode":           s.Mode,
		"weights":        specs,
		"inputs":         s.InputSpec().String(),
		"f32_size_bytes": f32,
	}
	if ctx.Stage != nil && len(ctx.Stage.Needs) == 1 {
		if acc, ok := ctx.InputMetrics[ctx.Stage.Needs[0]]["accuracy"]; ok {
			out["input_accuracy"] = acc
		}
	}
	return out, nil
}

// floatSize is the size in bytes of m's checkpoint with every weight in F32:
// its dense export (export.Dense).
func floatSize(m *model.Model) (int, error) {
	f, _, err := export.Dense(m, nil)
	if err != nil {
		return 0, err
	}
	return checkpoint.EncodedSize(f)
}
