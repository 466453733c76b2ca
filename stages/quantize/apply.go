package quantize

import (
	"fmt"
	"maps"
	"slices"

	"github.com/shrink-ml/shrink/model"
)

// Mark gives each layer the settings name its weight spec and its input
// quantization, leaving the weights as they are; it returns those layers in the
// model's order. Layers it does not name keep whatever they carried.
func (s *Settings) Mark(m *model.Model) ([]*model.Layer, error) {
	if _, err := m.Select(s.Layers); err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Overrides)) {
		if m.Layer(name) == nil {
			return nil, fmt.Errorf("overrides: layer %q is not in the model (its layers: %v)", name, m.LayerNames())
		}
	}
	listed := map[string]bool{}
	for _, n := range s.Layers {
		listed[n] = true
	}
	var out []*model.Layer
	for _, l := range m.Layers {
		if len(s.Layers) > 0 && !listed[l.Name] {
			continue
		}
		spec := s.LayerSpec(l.Name)
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
