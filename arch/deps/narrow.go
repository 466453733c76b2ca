package deps

import (
	"fmt"
	"maps"
	"slices"

	"github.com/shrink-ml/shrink/arch"
)

// Removal is a choice of channels to remove: channel indices per group.
type Removal map[*Group][]int

// Rows counts, per layer, the weight rows (output units) a removal takes.
func (r Removal) Rows() map[string]int {
	out := map[string]int{}
	for g, idx := range r {
		for _, i := range idx {
			for _, s := range g.Channels[i].Slices {
				if s.Role == Out && s.Kind == arch.Weight && s.Axis == 0 {
					out[s.Layer] += s.End - s.Start
				}
			}
		}
	}
	return out
}

// Widths are the layers' output units after a removal, for the layers it
// changes.
func (d *Deps) Widths(r Removal) (map[string]int, error) {
	for g, idx := range r {
		if g.Blocked != "" && len(idx) > 0 {
			return nil, fmt.Errorf("channels of %s cannot be removed: %s", g.Name, g.Blocked)
		}
	}
	widths := map[string]int{}
	for name, rows := range r.Rows() {
		n := d.Graph.Node(name)
		w := n.Out[0] - rows
		if w < 1 {
			return nil, fmt.Errorf("layer %s would lose all of its %d units: a layer cannot be removed whole", name, n.Out[0])
		}
		widths[name] = w
	}
	return widths, nil
}

// Narrow is the architecture after a removal. mlp and lenet5 keep their
// preset keys (hidden, channels); other networks become explicit layer lists
// whose layers carry their new out (and a depthwise convolution its groups).
// A removal that takes nothing returns the spec as it is.
func (d *Deps) Narrow(spec arch.Spec, r Removal) (arch.Spec, error) {
	widths, err := d.Widths(r)
	if err != nil {
		return arch.Spec{}, err
	}
	return d.SetWidths(spec, widths)
}

// SetWidths writes new output widths into the architecture (see Narrow).
func (d *Deps) SetWidths(spec arch.Spec, widths map[string]int) (arch.Spec, error) {
	s := spec.Normalized()
	if len(widths) == 0 {
		return s, nil
	}
	switch s.Arch {
	case arch.MLP:
		for _, name := range slices.Sorted(maps.Keys(widths)) {
			var i int
			if _, err := fmt.Sscanf(name, "fc%d", &i); err != nil || i < 1 || i > len(s.Hidden) {
				return arch.Spec{}, fmt.Errorf("mlp layer %s has no hidden width to change", name)
			}
			s.Hidden[i-1] = widths[name]
		}
		return s, nil
	case arch.LeNet5:
		keys := map[string]*int{"conv1": &s.Channels[0], "conv2": &s.Channels[1], "fc1": &s.Hidden[0], "fc2": &s.Hidden[1]}
		for name, w := range widths {
			k, ok := keys[name]
			if !ok {
				return arch.Spec{}, fmt.Errorf("lenet5 layer %s has no width to change", name)
			}
			*k = w
		}
		return s, nil
	}
	list, err := s.List()
	if err != nil {
		return arch.Spec{}, err
	}
	out := arch.Spec{Layers: slices.Clone(list), Input: s.InputShape(), Classes: s.Classes}
	for i, l := range out.Layers {
		w, ok := widths[l.Name]
		if !ok || l.Name == "" {
			continue
		}
		keys := map[string]any{"out": w}
		if n := d.Graph.Node(l.Name); n != nil && d.depthwise[n.Index] > 0 {
			keys["groups"] = w / d.depthwise[n.Index]
		}
		if out.Layers[i], err = arch.SetKeys(l, keys); err != nil {
			return arch.Spec{}, fmt.Errorf("layer %s: %w", l.Name, err)
		}
	}
	if _, err := out.Graph(); err != nil {
		return arch.Spec{}, fmt.Errorf("the narrowed network does not build: %w", err)
	}
	return out, nil
}
