package prune

import (
	"fmt"
	"slices"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/quant"
	"github.com/shrink-ml/shrink/stages"
)

// removeDeadUnits makes structured pruning physical: in each layer it removes
// the units (rows of a linear weight, output channels of a conv) whose weights
// are all pruned, the matching inputs of the next layer, and updates the
// model's spec so the checkpoint's arch records the new widths.
//
// A dead unit still outputs relu(bias), a constant the next layer reads; that
// constant times the next layer's weights on it is folded into the next layer's
// bias, so the logits stay what they were (up to float32 rounding). It returns
// the number of units removed per layer.
func removeDeadUnits(m *model.Model, layers []*model.Layer) (map[string]int, error) {
	type plan struct {
		l, next *model.Layer
		dead    []int
	}
	var plans []plan
	for _, l := range layers {
		switch {
		case l == m.Output():
			return nil, fmt.Errorf("layer %s is the output layer: its units are the classes, so physical pruning cannot remove them; leave it out of layers", l.Name)
		case l.Rank > 0:
			return nil, fmt.Errorf("layer %s is factored (lowrank, rank %d): physical pruning removes units of a dense weight; prune its factors without physical, or prune before lowrank", l.Name, l.Rank)
		}
		next, err := reluChainConsumer(m, l)
		if err != nil {
			return nil, err
		}
		dead := deadUnits(l.Weights[0])
		if len(dead) == l.Units() {
			return nil, fmt.Errorf("layer %s: every one of its %d units is pruned, and a layer cannot be removed whole: lower the amount", l.Name, l.Units())
		}
		plans = append(plans, plan{l, next, dead})
	}
	removed := map[string]int{}
	spec := m.Spec.Normalized()
	for _, p := range plans {
		l, next := p.l, p.next
		removed[l.Name] = len(p.dead)
		if len(p.dead) == 0 {
			continue
		}
		units := l.Units()
		foldDeadUnits(l, next, p.dead)
		keep := complement(units, p.dead)
		dropUnits(l, keep)
		dropInputs(next, units, keep)
		if err := setWidth(&spec, l.Name, len(keep)); err != nil {
			return nil, err
		}
		dropFullMasks(l)
		dropFullMasks(next)
	}
	return removed, m.SetSpec(spec)
}

// reluChainConsumer is the one layer with weights that reads l's output
// through a ReLU and then only max pooling or flattening: the chains of the
// mlp and lenet5 presets, where a dead unit's output is the constant
// relu(bias). Other graphs need the dependency groups of structured pruning.
func reluChainConsumer(m *model.Model, l *model.Layer) (*model.Layer, error) {
	at, sawReLU := l.Index, false
	for {
		consumers := m.Graph.Consumers(at)
		if len(consumers) != 1 {
			return nil, fmt.Errorf("layer %s: physical pruning follows a layer's output through a ReLU to the next layer, but %s feeds %d layers", l.Name, m.Layers[at].Label(), len(consumers))
		}
		n := consumers[0]
		switch {
		case n.Type == "relu" && !sawReLU:
			sawReLU = true
		case (n.Type == "maxpool2d" || n.Type == "flatten") && sawReLU:
		case sawReLU && stages.HasWeights(n) && n.Type == l.Type || sawReLU && n.Type == "linear":
			return m.Layers[n.Index], nil
		default:
			return nil, fmt.Errorf("layer %s: physical pruning follows a layer's output through a ReLU (then pooling or flatten) to the next linear or conv layer; here it reaches %s (%s)", l.Name, n.Label(), n.Type)
		}
		at = n.Index
	}
}

// deadUnits lists the rows of w (units along dim 0) whose entries are all pruned.
func deadUnits(w *model.Weight) []int {
	if w.Mask == nil {
		return nil
	}
	ch := channelsOf(w.Shape, 0)
	var dead []int
	for c := 0; c < ch.count; c++ {
		if !ch.alive(w.Mask, c) {
			dead = append(dead, c)
		}
	}
	return dead
}

func complement(n int, drop []int) []int {
	var keep []int
	for i := 0; i < n; i++ {
		if !slices.Contains(drop, i) {
			keep = append(keep, i)
		}
	}
	return keep
}

// foldDeadUnits adds each dead unit's constant output, relu(bias), times the
// next layer's weights on it to the next layer's bias. Unit j of l feeds a
// block of `span` consecutive inputs of each of next's rows: one input of a
// linear layer, the kh×kw window of a conv, or the 4×4 flattened map of a conv
// feeding a linear layer.
func foldDeadUnits(l, next *model.Layer, dead []int) {
	if len(dead) == 0 {
		return
	}
	in := next.Weights[0]
	rowLen := len(in.Data) / in.Shape[0]
	span := rowLen / l.Units()
	weight := next.DenseWeight() // [out, rowLen]
	bias, nextBias := l.Bias(), next.Bias()
	if bias == nil || nextBias == nil {
		return // without biases a dead unit outputs relu(0) = 0: nothing to fold
	}
	add := make([]float64, len(nextBias.Data))
	for _, j := range dead {
		c := max(float64(bias.Data[j]), 0)
		if c == 0 {
			continue
		}
		for o := range add {
			var s float64
			for col := j * span; col < (j+1)*span; col++ {
				s += weight[o*rowLen+col]
			}
			add[o] += c * s
		}
	}
	for o, a := range add {
		nextBias.Data[o] = float32(float64(nextBias.Data[o]) + a)
	}
}

// dropUnits keeps only the given rows of the layer's weight and bias (and of
// per-channel quantization parameters).
func dropUnits(l *model.Layer, keep []int) {
	w := l.Weights[0]
	rowLen := len(w.Data) / w.Shape[0]
	rows := func(v []float32) []float32 {
		if v == nil {
			return nil
		}
		out := make([]float32, 0, len(keep)*rowLen)
		for _, r := range keep {
			out = append(out, v[r*rowLen:(r+1)*rowLen]...)
		}
		return out
	}
	w.Data, w.Mask = rows(w.Data), rows(w.Mask)
	w.Shape[0] = len(keep)
	if b := l.Bias(); b != nil {
		bias := make([]float32, len(keep))
		for i, r := range keep {
			bias[i] = b.Data[r]
		}
		b.Data, b.Shape = bias, []int{len(keep)}
	}
	if p := w.QParams; p != nil && l.Quant != nil && l.Quant.Granularity == quant.PerChannel {
		np := quant.Params{}
		for _, r := range keep {
			np.Scale = append(np.Scale, p.Scale[r])
			np.ZeroPoint = append(np.ZeroPoint, p.ZeroPoint[r])
		}
		w.QParams = &np
	}
}

// dropInputs keeps, in the layer's input-side weight (the first factor when
// factored), the input blocks of the kept units of the previous layer, which
// had units of them.
func dropInputs(l *model.Layer, units int, keep []int) {
	w := l.Weights[0]
	rowLen := len(w.Data) / w.Shape[0]
	span := rowLen / units
	cols := func(v []float32) []float32 {
		if v == nil {
			return nil
		}
		out := make([]float32, 0, w.Shape[0]*len(keep)*span)
		for r := 0; r < w.Shape[0]; r++ {
			row := v[r*rowLen : (r+1)*rowLen]
			for _, u := range keep {
				out = append(out, row[u*span:(u+1)*span]...)
			}
		}
		return out
	}
	w.Data, w.Mask = cols(w.Data), cols(w.Mask)
	w.Shape[1] = w.Shape[1] / units * len(keep)
}

// dropFullMasks forgets masks that keep everything: a layer whose pruned units
// are gone is dense again.
func dropFullMasks(l *model.Layer) {
	for _, w := range l.Weights {
		if w.Mask != nil && kept(w) < len(w.Data) {
			return
		}
	}
	for _, w := range l.Weights {
		w.Mask = nil
	}
	l.Pruned = false
}

// setWidth records a layer's new unit count in the architecture: a preset's
// width key, or the layer's out in an explicit list.
func setWidth(s *arch.Spec, name string, width int) error {
	switch s.Arch {
	case arch.LeNet5:
		switch name {
		case "conv1":
			s.Channels[0] = width
		case "conv2":
			s.Channels[1] = width
		case "fc1":
			s.Hidden[0] = width
		case "fc2":
			s.Hidden[1] = width
		}
		return nil
	case arch.MLP:
		var i int
		if _, err := fmt.Sscanf(name, "fc%d", &i); err != nil || i < 1 || i > len(s.Hidden) {
			return fmt.Errorf("internal error: mlp layer %s has no hidden width", name)
		}
		s.Hidden[i-1] = width
		return nil
	case "":
		for i, l := range s.Layers {
			if l.Name != name {
				continue
			}
			switch c := l.Config.(type) {
			case *nn.Linear:
				cc := *c
				cc.Out = width
				s.Layers[i].Config = &cc
			case *nn.Conv2d:
				cc := *c
				cc.Out = width
				s.Layers[i].Config = &cc
			default:
				return fmt.Errorf("layer %s (%s) has no width to change", name, l.Type)
			}
			return nil
		}
	}
	return fmt.Errorf("physical pruning cannot change the widths of arch %s: describe the network as a layer list (shrink model prints it)", s.Arch)
}
