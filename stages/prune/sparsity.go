package prune

import (
	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// Sparsity is the pruned share of a model's weights, from the masks: per layer
// and over every weight tensor of the model.
type Sparsity struct {
	Layers  map[string]float64 `json:"layer_sparsity"`
	Global  float64            `json:"global_sparsity"`
	Kept    int                `json:"weights_kept"`
	Weights int                `json:"weights_total"`
	order   []string           // layer names in forward order, for the log
}

// measureSparsity reads the masks of every layer.
func measureSparsity(m *model.Model) Sparsity {
	s := Sparsity{Layers: map[string]float64{}}
	for _, l := range m.WeightLayers() {
		var total, keep int
		for _, w := range l.Weights {
			total += len(w.Data)
			keep += kept(w)
		}
		s.order = append(s.order, l.Name)
		s.Layers[l.Name] = stages.Round6(1 - float64(keep)/float64(max(total, 1)))
		s.Weights += total
		s.Kept += keep
	}
	s.Global = stages.Round6(1 - float64(s.Kept)/float64(max(s.Weights, 1)))
	return s
}

// WeightsLeft is the share of weights still unpruned.
func (s Sparsity) WeightsLeft() float64 {
	return stages.Round6(float64(s.Kept) / float64(max(s.Weights, 1)))
}

// addTo puts the sparsity into stage metrics.
func (s Sparsity) addTo(metrics map[string]any) {
	metrics["layer_sparsity"] = s.Layers
	metrics["global_sparsity"] = s.Global
	metrics["weights_left"] = s.WeightsLeft()
}

// log writes the sparsity as one log line.
func (s Sparsity) log(ev *zerolog.Event, msg string) {
	d := zerolog.Dict()
	for _, name := range s.order {
		d.Float64(name, s.Layers[name])
	}
	ev.Float64("global_sparsity", s.Global).Int("weights_kept", s.Kept).Int("weights_total", s.Weights).
		Dict("layer_sparsity", d).Msg(msg)
}
