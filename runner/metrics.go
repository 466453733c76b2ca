package runner

import (
	"context"
	"fmt"
	"os"

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
