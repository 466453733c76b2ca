package quantize

import (
	"fmt"
	"maps"
	"slices"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// Quantizable is the layers the mode applies to: static and QAT quantize
// linear and conv layers; dynamic also the layers PyTorch's quantize_dynamic
// takes (LSTM).
func (s *Settings) Quantizable() stages.Layers {
	if s.Mode == "dynamic" {
		return stages.Layers{What: "linear, conv2d and lstm layers", OK: func(n *arch.Node) bool { return n.Caps().Dynamic }}
	}
	return stages.Layers{What: "linear and conv2d layers", OK: func(n *arch.Node) bool { return n.Caps().Static }}
}

// Mark gives each layer the settings name its weight spec and its input
// quantization, leaving the weights as they are; it returns those layers in the
// model's order. Layers it does not name keep whatever they carried.
func (s *Settings) Mark(m *model.Model) ([]*model.Layer, error) {
	f := s.Quantizable()
	names, err := s.targets(m.Graph)
	if err != nil {
		return nil, err
	}
	if _, err := f.Resolve(m.Graph, slices.Sorted(maps.Keys(s.Overrides))); err != nil && len(s.Overrides) > 0 {
		return nil, fmt.Errorf("overrides: %w", err)
	}
	var out []*model.Layer
	for _, name := range names {
		l := m.Layer(name)
		spec, err := s.LayerSpec(l.Name)
		if err != nil {
			return nil, err
		}
		l.Quant = &spec
		for _, w := range l.Weights {
			w.QParams = nil // observed afresh by Snap or training
		}
		l.Input = &model.ActQuant{Mode: s.Mode, Spec: s.InputSpec()}
		out = append(out, l)
	}
	return out, nil
}

// Snap quantizes the layers' weights from their current values
// (model.Layer.Requantize), so Data holds exactly what the stored integers
// stand for.
func Snap(layers []*model.Layer) {
	for _, l := range layers {
		l.Requantize()
	}
}
