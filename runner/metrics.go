package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/export"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// LayerMetrics describe one layer of a stage's output.
type LayerMetrics struct {
	Params   int     `json:"params"`
	NonZero  int     `json:"nonzero"`
	Sparsity float64 `json:"sparsity"`
	Bits     int     `json:"bits"` // 32 for float weights
	Rank     int     `json:"rank,omitempty"`
	Shape    []int   `json:"shape"` // the dense weight's PyTorch shape
	// MACs are the layer's multiply-accumulates per sample (both factors' for
	// a factored layer; a pruned weight counts whole: masks save no work).
	MACs int64 `json:"macs"`
}

// measure computes the metrics every stage reports, on the checkpoint as written
// (read back, so what is measured is what is stored), merged with the stage's own;
// accuracy and loss on the test split of the stage's data (nil: none) in
// batches of batch (Recipe.StageEvalBatch).
func (r *Runner) measure(ctx context.Context, ckpt string, own map[string]any, d *dataOnce, batch int) (map[string]any, error) {
	f, err := checkpoint.ReadFile(ckpt)
	if err != nil {
		return nil, err
	}
	m, err := model.FromFile(f, &r.recipe.Model)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ckpt, err)
	}
	out := map[string]any{}
	for k, v := range own {
		out[k] = v
	}
	c := m.Count()
	st, err := os.Stat(ckpt)
	if err != nil {
		return nil, err
	}
	out["params_total"] = c.Total
	out["params_nonzero"] = c.NonZero
	out["sparsity"] = stages.Round6(1 - float64(c.NonZero)/float64(max(c.Total, 1)))
	out["weight_sparsity"] = stages.Round6(1 - float64(c.WeightsNonZero)/float64(max(c.Weights, 1)))
	out["size_bytes"] = st.Size()
	var macs int64
	for _, l := range m.Layers {
		macs += int64(l.MultiplyAdds())
	}
	out["macs"] = macs
	if err := compressedMetrics(out, f, ckpt, r.recipe.Model); err != nil {
		return nil, err
	}
	layers := map[string]LayerMetrics{}
	for _, l := range m.WeightLayers() {
		lm := LayerMetrics{Params: c.LayerWeights[l.Name], NonZero: c.LayerNonZero[l.Name], Bits: 32, Rank: l.Rank, Shape: l.WeightShape(), MACs: int64(l.MultiplyAdds())}
		lm.Sparsity = stages.Round6(1 - float64(lm.NonZero)/float64(max(lm.Params, 1)))
		switch {
		case l.Quant != nil:
			lm.Bits = l.Quant.Bits
		case l.Weights[0].NF4 != nil:
			lm.Bits = 4 // NF4 (lora's base: nf4)
		}
		layers[l.Name] = lm
	}
	out["layers"] = layers
	if d != nil {
		ds, err := d.dataset(r)
		if err != nil {
			return nil, err
		}
		res, err := model.Evaluate(ctx, m, ds.Test, batch)
		if err != nil {
			return nil, err
		}
		if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
			// NaN logits make the accuracy meaningless too (argmax of NaN), and
			// metrics.json cannot hold the loss: fail rather than record either.
			return nil, fmt.Errorf("evaluating the stage's model on the test split: the loss over %d samples is %v: the model's outputs are not finite numbers (float32 overflowed); "+
				"scale the inputs down (data.normalize) or check the weights the stage started from", res.Samples, res.Loss)
		}
		out["accuracy"] = res.Accuracy
		out["loss"] = stages.Round6(res.Loss)
		out["test_samples"] = res.Samples
	}
	return out, nil
}

// compressedMetrics adds compressed_bytes, the size of the checkpoint's
// compressed export (its deployed size), and compression_ratio, the dense F32
// size of the recipe's model (dense_f32_bytes: what the uncompressed original
// takes, the same for every stage) over it. See docs/COMPRESSED-FORMAT.md.
func compressedMetrics(out map[string]any, f *checkpoint.File, ckpt string, original arch.Spec) error {
	dense, err := export.DenseF32Bytes(original)
	if err != nil {
		return err
	}
	c, err := export.Measure(f, dense)
	if err != nil {
		return fmt.Errorf("%s: compressing: %w", ckpt, err)
	}
	out["compressed_bytes"] = c.Bytes
	out["compression_ratio"] = stages.Round6(c.Ratio)
	out["dense_f32_bytes"] = dense
	return nil
}

// checkFinite refuses metrics holding a NaN or an infinity, which
// metrics.json cannot hold (JSON has no such numbers) and which would rank
// wrongly in a select: the error names the metric's key path.
func checkFinite(metrics map[string]any) error {
	for _, k := range slices.Sorted(maps.Keys(metrics)) {
		if bad := nonFinite(k, metrics[k]); bad != "" {
			return fmt.Errorf("metric %s: metrics must be finite numbers; the stage's computation overflowed or diverged", bad)
		}
	}
	return nil
}

// nonFinite is "KEY is VALUE" for the first number in v that is not finite
// (nested maps are followed, KEY their dotted path), or "".
func nonFinite(key string, v any) string {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprintf("%s is %v", key, x)
		}
	case float32:
		return nonFinite(key, float64(x))
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if bad := nonFinite(key+"."+k, x[k]); bad != "" {
				return bad
			}
		}
	case map[string]float64:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if bad := nonFinite(key+"."+k, x[k]); bad != "" {
				return bad
			}
		}
	default:
		// Structs and other maps: what JSON makes of them.
		if _, err := json.Marshal(x); err != nil {
			return fmt.Sprintf("%s cannot be written (%v)", key, err)
		}
	}
	return ""
}
