package prune

import (
	"fmt"
	"slices"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/arch/deps"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/quant"
)

// removal is what removeDead did.
type removal struct {
	rows   map[string]int // units removed per layer making a group's channels
	folded int            // dead channels whose constant output moved into the next layers' biases
	lost   int            // dead channels with a non-zero constant output that could not move
}

// removeDead makes structured pruning physical: in each group it removes the
// channels whose rows are all pruned from every tensor coupled with them (the
// rows and bias of the layers making them, batch norms, the next layers'
// inputs, residual partners) and records the new widths in the model's
// architecture.
//
// A dead channel still outputs a constant (relu(bias), or a batch norm's
// shift), which the next layers read. Where that constant reaches a layer
// through ReLUs, max pooling and flattening only, and the layer sums it the
// same at every position (a linear layer, an unpadded convolution) and has a
// bias, it is folded into that bias, so the logits stay what they were (up
// to float32 rounding): the mlp and lenet5 chains. Elsewhere (through a batch
// norm, whose constant differs between training and eval, or into a padded
// convolution) it is dropped, as Torch-Pruning drops it; group_norm masks the
// next layers' inputs too, so its channels have nothing to drop.
func removeDead(m *model.Model, d *deps.Deps, cands []*candidate) (removal, error) {
	r := removal{rows: map[string]int{}}
	plan := deps.Removal{}
	for _, cd := range cands {
		for _, p := range cd.g.Producers() {
			r.rows[p] += 0 // reported even when nothing goes
		}
		var dead []int
		for i, ch := range cd.g.Channels {
			if !alive(m, ch) {
				dead = append(dead, i)
			}
		}
		if len(dead) == len(cd.g.Channels) {
			return r, fmt.Errorf("layer %s: every one of its %d units is pruned, and a layer cannot be removed whole: lower the amount", cd.g.Name, len(dead))
		}
		if len(dead) > 0 {
			plan[cd.g] = dead
		}
	}
	widths, err := d.Widths(plan)
	if err != nil {
		return r, err
	}
	spec, err := d.SetWidths(m.Spec, widths)
	if err != nil {
		return r, err
	}
	// Every fold reads tensors by their original indices, so all folds come
	// before any removal, in forward order: a fold into a layer's bias is
	// seen by that layer's own fold later, as when each layer was done in turn.
	for _, cd := range cands {
		f, l := fold(m, cd.g, plan[cd.g])
		r.folded += f
		r.lost += l
	}
	drops := map[*model.Weight]map[int][]int{} // tensor -> axis -> indices to remove
	owner := map[*model.Weight]*model.Layer{}
	for g, dead := range plan {
		for _, i := range dead {
			for _, s := range g.Channels[i].Slices {
				w, axis := weightOf(m, s)
				if drops[w] == nil {
					drops[w] = map[int][]int{}
				}
				for k := s.Start; k < s.End; k++ {
					drops[w][axis] = append(drops[w][axis], k)
				}
				owner[w] = m.Layer(s.Layer)
			}
		}
	}
	for w, axes := range drops {
		for axis, idx := range axes {
			dropAlong(owner[w], w, axis, idx)
		}
	}
	for name, n := range plan.Rows() {
		r.rows[name] = n
	}
	touched := map[*model.Layer]bool{}
	for _, l := range owner {
		touched[l] = true
	}
	for l := range touched {
		dropFullMasks(l)
	}
	return r, m.SetSpec(spec)
}

// dropAlong removes indices along an axis of a tensor, with its mask and, for
// rows, its per-channel quantization parameters.
func dropAlong(l *model.Layer, w *model.Weight, axis int, drop []int) {
	ch := channelsOf(w.Shape, axis)
	keep := complement(ch.count, drop)
	take := func(v []float32) []float32 {
		if v == nil {
			return nil
		}
		out := make([]float32, 0, ch.outer*len(keep)*ch.inner)
		for o := 0; o < ch.outer; o++ {
			for _, k := range keep {
				at := (o*ch.count + k) * ch.inner
				out = append(out, v[at:at+ch.inner]...)
			}
		}
		return out
	}
	w.Data, w.Mask = take(w.Data), take(w.Mask)
	w.Shape[axis] = len(keep)
	if p := w.QParams; p != nil && axis == 0 && l.Quant != nil && l.Quant.Granularity == quant.PerChannel {
		np := quant.Params{}
		for _, k := range keep {
			np.Scale = append(np.Scale, p.Scale[k])
			np.ZeroPoint = append(np.ZeroPoint, p.ZeroPoint[k])
		}
		w.QParams = &np
	}
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

// fold adds each dead channel's constant output times the weights reading it
// to the reading layers' biases, where that is exact (see removeDead). It
// returns how many dead channels it folded, and how many had a constant output
// it could not fold (which their removal drops).
func fold(m *model.Model, g *deps.Group, dead []int) (folded, lost int) {
	if len(dead) == 0 {
		return 0, 0
	}
	ps := g.Producers()
	var bias *model.Weight
	if len(ps) == 1 {
		bias = m.Layer(ps[0]).Bias()
	}
	readers, relu, ok := constantPaths(m, m.Layer(ps[0]), g)
	if !ok || bias == nil {
		for _, j := range dead {
			if constantOutput(m, g.Channels[j]) {
				lost++
			}
		}
		return 0, lost
	}
	for _, rd := range readers {
		next := m.Layer(rd)
		nextBias := next.Bias()
		weight := next.DenseWeight() // [out, fan_in]
		rowLen := len(weight) / next.Units()
		inner := arch.Shape(next.WeightShape()[2:]).Size()
		add := make([]float64, next.Units())
		for _, j := range dead {
			c := float64(bias.Data[j])
			if relu[rd] {
				c = max(c, 0)
			}
			if c == 0 {
				continue
			}
			if nextBias == nil {
				lost++
				continue
			}
			for o := range add {
				var s float64
				for _, sl := range g.Channels[j].Slices {
					if sl.Layer != rd || sl.Role != deps.In {
						continue
					}
					for col := sl.Start * inner; col < sl.End*inner; col++ {
						s += weight[o*rowLen+col]
					}
				}
				add[o] += c * s
			}
			folded++
		}
		if nextBias != nil {
			for o, a := range add {
				nextBias.Data[o] = float32(float64(nextBias.Data[o]) + a)
			}
		}
	}
	return folded, lost
}

// constantOutput reports whether a dead channel may still output a non-zero
// constant: a bias of the layer making it, or a batch norm's shift
// β − γ·mean/√(var+ε).
func constantOutput(m *model.Model, ch deps.Channel) bool {
	norms := map[string]map[string][]float32{} // batch norm -> tensor -> values
	for _, s := range ch.Slices {
		if s.Role == deps.In || s.Kind == arch.Weight {
			continue
		}
		w, axis := weightOf(m, s)
		var v []float32
		for i := range entries(w, axis, s.Start, s.End) {
			v = append(v, w.Data[i])
		}
		if s.Role == deps.Out {
			if slices.ContainsFunc(v, func(x float32) bool { return x != 0 }) {
				return true
			}
			continue
		}
		if norms[s.Layer] == nil {
			norms[s.Layer] = map[string][]float32{}
		}
		norms[s.Layer][s.Tensor] = v
	}
	for _, n := range norms {
		for i := range n["running_mean"] {
			gamma, beta := float32(1), float32(0)
			if n["weight"] != nil {
				gamma, beta = n["weight"][i], n["bias"][i]
			}
			if beta != 0 || gamma != 0 && n["running_mean"][i] != 0 {
				return true
			}
		}
	}
	return false
}

// constantPaths follows layer p's output to the layers reading the group's
// channels and reports, per reader, whether a ReLU is on the way; ok is false
// unless every path passes only ReLUs, max pooling, global average pooling,
// flattening and concatenation (which keep a constant channel constant) and
// ends in a linear layer or an unpadded, ungrouped convolution (which sum it
// the same at every position).
func constantPaths(m *model.Model, p *model.Layer, g *deps.Group) (readers []string, relu map[string]bool, ok bool) {
	reads := map[string]bool{}
	for _, s := range g.Channels[0].Slices {
		if s.Role == deps.In {
			reads[s.Layer] = true
		}
		if s.Role == deps.Norm {
			return nil, nil, false
		}
	}
	relu = map[string]bool{}
	seen := map[int]bool{}
	var walk func(at int, sawReLU bool) bool
	walk = func(at int, sawReLU bool) bool {
		for _, n := range m.Graph.Consumers(at) {
			if seen[n.Index] {
				return false // two paths meet: the constant would count twice
			}
			seen[n.Index] = true
			switch {
			case reads[n.Name]:
				if !plainReader(n) {
					return false
				}
				readers = append(readers, n.Name)
				relu[n.Name] = sawReLU
			case n.Type == "relu":
				if !walk(n.Index, true) {
					return false
				}
			case n.Type == "maxpool2d" || n.Type == "adaptive_avgpool2d" || n.Type == "flatten" || n.Type == "concat":
				if !walk(n.Index, sawReLU) {
					return false
				}
			default:
				return false
			}
		}
		return true
	}
	if !walk(p.Index, false) {
		return nil, nil, false
	}
	return readers, relu, true
}

// plainReader: a layer that adds the same multiple of a constant input
// channel to every output position.
func plainReader(n *arch.Node) bool {
	switch c := n.Config.(type) {
	case *nn.Linear:
		return true
	case *nn.Conv2d:
		return c.Padding == nn.Square(0) && c.Groups == 1
	}
	return false
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
