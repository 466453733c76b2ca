package prune

import (
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// size is a model's multiply-accumulates per sample and parameters, in all and
// per layer with weights.
type size struct {
	macs, params int64
	layers       map[string]layerSize
}

type layerSize struct {
	MACs   int64 `json:"macs"`
	Params int64 `json:"params"`
}

// sizes measures a model as it is stored: a factored layer counts both
// factors, a masked weight its full shape.
func sizes(m *model.Model) size {
	s := size{layers: map[string]layerSize{}}
	for _, l := range m.Layers {
		var ls layerSize
		ls.MACs = int64(l.MultiplyAdds())
		for _, set := range [][]*model.Weight{l.Weights, l.Params} {
			for _, w := range set {
				ls.Params += int64(len(w.Data))
			}
		}
		s.macs += ls.MACs
		s.params += ls.Params
		if l.Compressible() {
			s.layers[l.Name] = ls
		}
	}
	return s
}

// addTo reports the sizes before and after the stage's pruning.
func (s size) addTo(metrics map[string]any, before size) {
	metrics["macs_before"], metrics["macs_after"] = before.macs, s.macs
	metrics["params_before"], metrics["params_after"] = before.params, s.params
	metrics["macs_kept"] = stages.Round6(float64(s.macs) / float64(max(before.macs, 1)))
	metrics["params_kept"] = stages.Round6(float64(s.params) / float64(max(before.params, 1)))
	per := map[string]map[string]layerSize{}
	for name, b := range before.layers {
		per[name] = map[string]layerSize{"before": b, "after": s.layers[name]}
	}
	metrics["layer_sizes"] = per
}
