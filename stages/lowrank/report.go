package lowrank

import (
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// LayerReport is what the stage did to one listed layer; metrics.json holds one
// per layer under "lowrank". Ranks are 0 for a dense layer; params count weights
// (not biases), multiply-adds are per sample.
type LayerReport struct {
	Result string `json:"result"` // factored, refactored, kept dense, kept factored, kept unchanged
	Rule   string `json:"rule"`   // "rank 64" or "energy 0.9": the rule that chose Rank
	Shape  []int  `json:"shape"`  // the dense weight's PyTorch shape

	RankBefore         int `json:"rank_before"`
	Rank               int `json:"rank"`
	ParamsBefore       int `json:"params_before"`
	Params             int `json:"params"`
	MultiplyAddsBefore int `json:"multiply_adds_before"`
	MultiplyAdds       int `json:"multiply_adds"`

	// ReconstructionError is ||W - NAME.1.weight x NAME.0.weight||_F / ||W||_F
	// for the factors as stored, before any fine-tuning (0 for a kept layer).
	ReconstructionError float64 `json:"reconstruction_error"`
	// EnergyKept is the share of W's squared Frobenius norm that the kept singular
	// values hold (1 for a kept layer).
	EnergyKept float64 `json:"energy_kept"`
}

// multiplyAdds is the model's multiply-adds for one sample's forward pass.
func multiplyAdds(m *model.Model) int {
	n := 0
	for _, l := range m.Layers {
		n += l.MultiplyAdds()
	}
	return n
}

// rounded returns the report with its floats rounded for metrics.json.
func (r LayerReport) rounded() LayerReport {
	r.ReconstructionError = stages.Round6(r.ReconstructionError)
	r.EnergyKept = stages.Round6(r.EnergyKept)
	return r
}
