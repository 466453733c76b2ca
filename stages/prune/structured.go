package prune

import (
	"cmp"
	"fmt"
	"iter"
	"slices"
)

// channels describes the slices of a weight along dim: channel c of a [d0, d1,
// rest...] weight is every entry whose index along dim is c.
type channels struct {
	count        int // shape[dim]
	outer, inner int // blocks before and entries after the dim
}

func channelsOf(shape []int, dim int) channels {
	ch := channels{count: shape[dim], outer: 1, inner: 1}
	for _, d := range shape[:dim] {
		ch.outer *= d
	}
	for _, d := range shape[dim+1:] {
		ch.inner *= d
	}
	return ch
}

// entries yields the flat indices of channel c.
func (ch channels) entries(c int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for o := 0; o < ch.outer; o++ {
			base := (o*ch.count + c) * ch.inner
			for r := 0; r < ch.inner; r++ {
				if !yield(base + r) {
					return
				}
			}
		}
	}
}

// alive reports whether channel c keeps any entry: channels pruned whole before
// are no longer candidates (PyTorch's PruningContainer does the same).
func (ch channels) alive(mask []float32, c int) bool {
	if mask == nil {
		return true
	}
	for i := range ch.entries(c) {
		if mask[i] != 0 {
			return true
		}
	}
	return false
}

// lnStructured prunes, in each tensor on its own, the amount of its unpruned
// channels along dim with the smallest Ln norm (ties: the lower channel first).
// The norm is taken over the current values, so entries pruned earlier count as
// zeros. It returns the number of channels pruned per tensor.
func lnStructured(ts []tensor, amount Amount, n Norm, dim int) (map[string]int, error) {
	pruned := map[string]int{}
	for _, t := range ts {
		w := t.weight
		ch := channelsOf(w.Shape, dim)
		var alive []int
		for c := 0; c < ch.count; c++ {
			if ch.alive(w.Mask, c) {
				alive = append(alive, c)
			}
		}
		k, err := amount.Of(len(alive), "channels")
		if err != nil {
			return nil, fmt.Errorf("layer %s (%s, dim %d): %w", t.layer.Name, w.Name, dim, err)
		}
		scores := make(map[int]float64, len(alive))
		for _, c := range alive {
			scores[c] = n.score(func(yield func(float32) bool) {
				for i := range ch.entries(c) {
					if !yield(w.Data[i]) {
						return
					}
				}
			})
		}
		slices.SortStableFunc(alive, func(a, b int) int { return cmp.Compare(scores[a], scores[b]) })
		var cut []int
		for _, c := range alive[:k] {
			cut = slices.AppendSeq(cut, ch.entries(c))
		}
		t.cut(cut)
		pruned[w.Name] = k
	}
	return pruned, nil
}
