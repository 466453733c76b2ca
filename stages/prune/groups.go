package prune

import (
	"cmp"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/arch/deps"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// candidate is a channel group a groupwise prune acts on.
type candidate struct {
	g      *deps.Group
	listed []string // the listed layers whose channels it holds
	amount Amount   // unset with a target
}

// candidates resolves layers and ignore to the groups to prune, in forward
// order. Listed layers must have removable channels; by default every layer
// whose channels can be removed is taken (never the output layer).
func (c *Config) candidates(m *model.Model, d *deps.Deps) ([]*candidate, error) {
	explicit := len(c.Layers) > 0
	layers := m.WeightLayers()
	if explicit {
		var err error
		if layers, err = m.Select(c.Layers); err != nil {
			return nil, fmt.Errorf("layers: %w", err)
		}
	}
	ignored := map[*deps.Group]string{}
	if len(c.Ignore) > 0 {
		ig, err := m.Select(c.Ignore)
		if err != nil {
			return nil, fmt.Errorf("ignore: %w", err)
		}
		for _, l := range ig {
			for _, g := range d.GroupsOf(l.Name) {
				ignored[g] = l.Name
			}
		}
	}
	var out []*candidate
	byGroup := map[*deps.Group]*candidate{}
	for _, l := range layers {
		switch {
		case l == m.Output():
			if !explicit {
				continue
			}
			return nil, fmt.Errorf("layer %s is the output layer: its units are the classes, so structured pruning cannot remove them; leave it out of layers", l.Name)
		case l.Rank > 0:
			return nil, fmt.Errorf("layer %s is factored (lowrank, rank %d): structured pruning removes units of a dense weight; prune its factors without physical, or prune before lowrank", l.Name, l.Rank)
		}
		gs := d.GroupsOf(l.Name)
		if len(gs) == 0 {
			if !explicit {
				continue
			}
			return nil, fmt.Errorf("layer %s (%s): structured pruning does not know its output channels", l.Name, l.Type)
		}
		for _, g := range gs {
			by := ignored[g]
			switch {
			case g.Blocked != "" && explicit:
				return nil, fmt.Errorf("layer %s: its channels cannot be removed: %s", l.Name, g.Blocked)
			case by != "" && explicit:
				return nil, fmt.Errorf("layer %s shares its channels with %s, which ignore protects (%s): remove one of them from layers or ignore", l.Name, by, groupLayers(g))
			case g.Blocked != "" || by != "":
				continue
			}
			cd := byGroup[g]
			if cd == nil {
				cd = &candidate{g: g}
				byGroup[g] = cd
				out = append(out, cd)
			}
			cd.listed = append(cd.listed, l.Name)
		}
	}
	if c.Target == nil {
		for _, cd := range out {
			for i, name := range cd.listed {
				a, sel, err := stages.Lookup(c.Amounts, name)
				if err != nil {
					return nil, fmt.Errorf("amounts: %w", err)
				}
				if sel == "" {
					a = c.Amount
				}
				if !a.IsSet() {
					return nil, fmt.Errorf("layer %s has no amount: add it to amounts, or set amount for the other layers", name)
				}
				if i > 0 && a != cd.amount {
					return nil, fmt.Errorf("layers %s and %s share their channels (%s) but have the amounts %s and %s: give them one", cd.listed[0], name, groupLayers(cd.g), cd.amount, a)
				}
				cd.amount = a
			}
		}
	}
	slices.SortStableFunc(out, func(a, b *candidate) int { return cmp.Compare(a.g.ID, b.g.ID) })
	return out, nil
}

// groupLayers names a group's layers for messages.
func groupLayers(g *deps.Group) string {
	ls := g.Layers()
	if len(ls) > 6 {
		return strings.Join(ls[:6], ", ") + fmt.Sprintf(", ... (%d layers)", len(ls))
	}
	return strings.Join(ls, ", ")
}

// weightOf is the model tensor a slice lies in, and the axis there: a factored
// layer's rows are its second factor's, its columns its first factor's.
func weightOf(m *model.Model, s deps.Slice) (*model.Weight, int) {
	l := m.Layer(s.Layer)
	if l.Rank > 0 {
		switch {
		case s.Tensor == "weight" && s.Axis == 0:
			return l.Weights[1], 0
		case s.Tensor == "weight":
			return l.Weights[0], s.Axis
		case s.Tensor == "bias":
			return l.Bias(), 0
		}
	}
	name := l.Name + "." + s.Tensor
	for _, set := range [][]*model.Weight{l.Weights, l.Params, l.Buffers} {
		for _, w := range set {
			if w.Name == name {
				return w, s.Axis
			}
		}
	}
	return nil, 0
}

// entries yields the flat indices of a slice in its tensor, channel by
// channel.
func entries(w *model.Weight, axis, start, end int) iter.Seq[int] {
	ch := channelsOf(w.Shape, axis)
	return func(yield func(int) bool) {
		for c := start; c < end; c++ {
			for i := range ch.entries(c) {
				if !yield(i) {
					return
				}
			}
		}
	}
}

// isRow: the slice is a row (or rows) of a weight that makes the channel.
func isRow(s deps.Slice) bool { return s.Role == deps.Out && s.Kind == arch.Weight }

// alive reports whether a channel keeps an entry in any of the weight rows
// making it: channels pruned whole before are no longer candidates.
func alive(m *model.Model, ch deps.Channel) bool {
	for _, s := range ch.Slices {
		if !isRow(s) {
			continue
		}
		w, axis := weightOf(m, s)
		if w.Mask == nil {
			return true
		}
		for i := range entries(w, axis, s.Start, s.End) {
			if w.Mask[i] != 0 {
				return true
			}
		}
	}
	return false
}

// score is how important a channel is. ln_structured: the Ln norm of the
// listed layers' rows making it (for one layer, PyTorch's ln_structured
// score; for a residual group, the norm of all listed rows together).
// group_norm: the sum of the Ln norms of every weight slice coupled with it
// (rows, the next layers' columns) and of batch norm weights.
func (c *Config) score(m *model.Model, cd *candidate, ch deps.Channel) float64 {
	values := func(ss ...deps.Slice) iter.Seq[float32] {
		return func(yield func(float32) bool) {
			for _, s := range ss {
				w, axis := weightOf(m, s)
				for i := range entries(w, axis, s.Start, s.End) {
					if !yield(w.Data[i]) {
						return
					}
				}
			}
		}
	}
	if c.Method == LnStructured {
		var rows []deps.Slice
		for _, s := range ch.Slices {
			if isRow(s) && slices.Contains(cd.listed, s.Layer) {
				rows = append(rows, s)
			}
		}
		return c.N.score(values(rows...))
	}
	total := 0.0
	for _, s := range ch.Slices {
		if s.Kind == arch.Weight || s.Role == deps.Norm && s.Tensor == "weight" {
			total += c.N.score(values(s))
		}
	}
	return total
}

// cutChannel prunes a channel. ln_structured masks the rows of every layer
// making it (with one layer, exactly PyTorch's ln_structured); group_norm
// masks every weight slice coupled with it, rows and the next layers' columns,
// and zeroes its biases and batch norm affine entries, so the channel
// contributes nothing wherever it goes.
func (c *Config) cutChannel(m *model.Model, ch deps.Channel) {
	for _, s := range ch.Slices {
		w, axis := weightOf(m, s)
		idx := slices.Collect(entries(w, axis, s.Start, s.End))
		switch {
		case s.Kind == arch.Weight && (isRow(s) || c.Method == GroupNorm):
			tensor{layer: m.Layer(s.Layer), weight: w}.cut(idx)
		case c.Method == GroupNorm && s.Kind == arch.Param:
			for _, i := range idx {
				w.Data[i] = 0
			}
		}
	}
}

// pruneGroups chooses and prunes channels of the candidate groups: amount of
// each group's unpruned channels by score, or with a target the least
// important channels over all groups until the target is met. It returns the
// channels pruned per group.
func (c *Config) pruneGroups(m *model.Model, d *deps.Deps, cands []*candidate) (map[*candidate][]int, error) {
	chosen := map[*candidate][]int{}
	if c.Target == nil {
		for _, cd := range cands {
			var live []int
			for i, ch := range cd.g.Channels {
				if alive(m, ch) {
					live = append(live, i)
				}
			}
			k, err := cd.amount.Of(len(live), "channels")
			if err != nil {
				return nil, fmt.Errorf("layer %s (%d channels, %s): %w", cd.g.Name, len(cd.g.Channels), groupLayers(cd.g), err)
			}
			scores := make(map[int]float64, len(live))
			for _, i := range live {
				scores[i] = c.score(m, cd, cd.g.Channels[i])
			}
			slices.SortStableFunc(live, func(a, b int) int { return cmp.Compare(scores[a], scores[b]) })
			chosen[cd] = slices.Clone(live[:k])
		}
	} else {
		var err error
		if chosen, err = c.globalChoice(m, d, cands); err != nil {
			return nil, err
		}
	}
	for _, cd := range cands {
		for _, i := range chosen[cd] {
			c.cutChannel(m, cd.g.Channels[i])
		}
	}
	return chosen, nil
}

// ranked is one channel in the global order.
type ranked struct {
	cd    *candidate
	index int
	score float64
}

// globalChoice ranks the unpruned channels of every candidate group together
// and takes the least important until the architecture keeps the target
// fraction of its MACs or parameters. Scores are divided by their group's
// mean (Torch-Pruning's "mean" normalizer), since groups of wide or many
// layers have larger norms; each group keeps at least one channel.
func (c *Config) globalChoice(m *model.Model, d *deps.Deps, cands []*candidate) (map[*candidate][]int, error) {
	measure, frac := c.Target.measure()
	size := func(s arch.Spec) (int64, error) {
		g, err := s.Graph()
		if err != nil {
			return 0, err
		}
		if measure == "macs" {
			return g.MACs(), nil
		}
		return g.Params(), nil
	}
	total, err := size(m.Spec)
	if err != nil {
		return nil, err
	}
	goal := int64(frac * float64(total))
	var order []ranked
	dead := deps.Removal{}
	live := map[*candidate]int{}
	for _, cd := range cands {
		var group []ranked
		sum := 0.0
		for i, ch := range cd.g.Channels {
			if !alive(m, ch) {
				dead[cd.g] = append(dead[cd.g], i)
				continue
			}
			s := c.score(m, cd, ch)
			sum += s
			group = append(group, ranked{cd, i, s})
		}
		live[cd] = len(group)
		if mean := sum / float64(max(len(group), 1)); mean > 0 {
			for i := range group {
				group[i].score /= mean
			}
		}
		order = append(order, group...)
	}
	slices.SortStableFunc(order, func(a, b ranked) int { return cmp.Compare(a.score, b.score) })
	// take is the first k channels of the order that leave every group a
	// channel.
	take := func(k int) map[*candidate][]int {
		left := map[*candidate]int{}
		for cd, n := range live {
			left[cd] = n
		}
		out := map[*candidate][]int{}
		for _, r := range order[:k] {
			if left[r.cd] > 1 {
				left[r.cd]--
				out[r.cd] = append(out[r.cd], r.index)
			}
		}
		return out
	}
	sizeAfter := func(k int) (int64, error) {
		r := deps.Removal{}
		for g, idx := range dead {
			r[g] = slices.Clone(idx)
		}
		for cd, idx := range take(k) {
			r[cd.g] = append(r[cd.g], idx...)
		}
		s, err := d.Narrow(m.Spec, r)
		if err != nil {
			return 0, err
		}
		return size(s)
	}
	least, err := sizeAfter(len(order))
	if err != nil {
		return nil, err
	}
	if least > goal {
		return nil, fmt.Errorf("target %s %g cannot be reached: removing all but one channel of every group the stage may prune leaves %d of the model's %d %s (%.3g); prune more layers, ignore fewer, or lower the target less", measure, frac, least, total, measure, float64(least)/float64(total))
	}
	lo, hi := 0, len(order) // sizeAfter(hi) <= goal
	for lo < hi {
		mid := (lo + hi) / 2
		s, err := sizeAfter(mid)
		if err != nil {
			return nil, err
		}
		if s <= goal {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	chosen := take(hi)
	for _, idx := range chosen {
		slices.Sort(idx)
	}
	return chosen, nil
}

// runGroups prunes channel groups (group_norm, and ln_structured with
// physical or a target), and removes the pruned channels when physical.
func (c *Config) runGroups(ctx *stages.Context, m *model.Model, metrics map[string]any) error {
	d := deps.Analyze(m.Graph)
	cands, err := c.candidates(m, d)
	if err != nil {
		return err
	}
	if len(cands) == 0 {
		return fmt.Errorf("no layer has output channels structured pruning can remove: every group is the output layer's, blocked or ignored (shrink model lists the layers)")
	}
	chosen, err := c.pruneGroups(m, d, cands)
	if err != nil {
		return err
	}
	pruned := map[string]int{}
	var groups []map[string]any
	for _, cd := range cands {
		for _, p := range cd.g.Producers() {
			pruned[p+".weight"] += len(chosen[cd])
		}
		groups = append(groups, map[string]any{"name": cd.g.Name, "layers": cd.g.Producers(), "channels": len(cd.g.Channels), "pruned": len(chosen[cd])})
	}
	metrics["pruned"], metrics["groups"] = pruned, groups
	if c.Target != nil {
		measure, frac := c.Target.measure()
		metrics["target"] = map[string]float64{measure: frac}
	}
	if !c.Physical {
		// What removing the pruned channels would leave (the shapes stay).
		dead := deps.Removal{}
		for _, cd := range cands {
			for i, ch := range cd.g.Channels {
				if !alive(m, ch) {
					dead[cd.g] = append(dead[cd.g], i)
				}
			}
		}
		if s, err := d.Narrow(m.Spec, dead); err == nil {
			if g, err := s.Graph(); err == nil {
				metrics["macs_if_removed"], metrics["params_if_removed"] = g.MACs(), g.Params()
			}
		}
		return nil
	}
	r, err := removeDead(m, d, cands)
	if err != nil {
		return err
	}
	w := widths(m)
	metrics["removed_units"], metrics["widths"] = r.rows, w
	metrics["folded_units"], metrics["dropped_constants"] = r.folded, r.lost
	ctx.Log.Info().Interface("removed_units", r.rows).Interface("widths", w).Int("folded", r.folded).Int("dropped_constants", r.lost).Msg("units removed")
	return nil
}
