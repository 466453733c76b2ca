package prune

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// l1Unstructured prunes, in each tensor on its own, the amount of unpruned
// entries with the smallest |w|; among equal magnitudes the lower flat index
// goes first. It returns the number pruned per tensor.
func l1Unstructured(ts []tensor, amount Amount) (map[string]int, error) {
	pruned := map[string]int{}
	for _, t := range ts {
		idx := t.unpruned()
		k, err := amount.Of(len(idx), "weights")
		if err != nil {
			return nil, fmt.Errorf("layer %s (%s): %w", t.layer.Name, t.weight.Name, err)
		}
		byMagnitude(idx, func(i int) float32 { return t.weight.Data[i] })
		t.cut(idx[:k])
		pruned[t.weight.Name] = k
	}
	return pruned, nil
}

// globalUnstructured prunes the amount of unpruned entries with the smallest |w|
// over all tensors together, as if concatenated in order (ties: the lower index
// in that concatenation first).
func globalUnstructured(ts []tensor, amount Amount) (map[string]int, error) {
	type entry struct{ t, i int }
	var all []entry
	for ti, t := range ts {
		for _, i := range t.unpruned() {
			all = append(all, entry{ti, i})
		}
	}
	k, err := amount.Of(len(all), "weights")
	if err != nil {
		return nil, fmt.Errorf("layers %s together: %w", names(ts), err)
	}
	// The entries are in concatenation order, so a stable sort keeps the lower
	// index first among ties.
	slices.SortStableFunc(all, func(a, b entry) int {
		return cmp.Compare(abs32(ts[a.t].weight.Data[a.i]), abs32(ts[b.t].weight.Data[b.i]))
	})
	cuts := make([][]int, len(ts))
	for _, e := range all[:k] {
		cuts[e.t] = append(cuts[e.t], e.i)
	}
	pruned := map[string]int{}
	for ti, t := range ts {
		t.cut(cuts[ti])
		pruned[t.weight.Name] = len(cuts[ti])
	}
	return pruned, nil
}

// randomUnstructured prunes, in each tensor on its own, the amount of unpruned
// entries chosen uniformly at random.
func randomUnstructured(ts []tensor, amount Amount, rng *rand.Rand) (map[string]int, error) {
	pruned := map[string]int{}
	for _, t := range ts {
		idx := t.unpruned()
		k, err := amount.Of(len(idx), "weights")
		if err != nil {
			return nil, fmt.Errorf("layer %s (%s): %w", t.layer.Name, t.weight.Name, err)
		}
		// A partial Fisher-Yates shuffle draws k distinct entries.
		for i := 0; i < k; i++ {
			j := i + rng.IntN(len(idx)-i)
			idx[i], idx[j] = idx[j], idx[i]
		}
		t.cut(idx[:k])
		pruned[t.weight.Name] = k
	}
	return pruned, nil
}

// byMagnitude sorts flat indices (given in increasing order) by |value|, keeping
// the lower index first among ties.
func byMagnitude(idx []int, value func(int) float32) {
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(abs32(value(a)), abs32(value(b))) })
}

func abs32(x float32) float32 { return float32(math.Abs(float64(x))) }

func names(ts []tensor) string {
	var s []string
	for _, t := range ts {
		if !slices.Contains(s, t.layer.Name) {
			s = append(s, t.layer.Name)
		}
	}
	return strings.Join(s, ", ")
}
