package prune

import (
	"math"
	"slices"
	"testing"
)

// TestSecondPruneCountsWhatIsLeft prunes a pruned model again: the amount is a
// share of the unpruned weights only (0.2 twice leaves 0.8 × 0.8), the earlier
// zeros stay, and a count larger than what is left is an error.
func TestSecondPruneCountsWhatIsLeft(t *testing.T) {
	tests := []struct {
		name  string
		raw   map[string]any
		units func(n int) int // entries of one unit: 1 for unstructured, a row for ln_structured dim 0
	}{
		{"l1_unstructured", map[string]any{"method": "l1_unstructured", "amount": 0.2}, func(int) int { return 1 }},
		{"random_unstructured", map[string]any{"method": "random_unstructured", "amount": 0.2}, func(int) int { return 1 }},
		{"ln_structured", map[string]any{"method": "ln_structured", "amount": 0.2, "n": 1}, func(rowLen int) int { return rowLen }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := mlp(20, []int{30}, 10)
			first, err := run(t, newContext(t, start, nil), tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			firstZeros := map[string][]int{}
			for _, l := range first.Model.WeightLayers() {
				firstZeros[l.Name] = zeros(l.Weights[0].Data)
			}
			second, err := run(t, newContext(t, first.Model.Clone(), nil), tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range second.Model.WeightLayers() {
				w := l.Weights[0]
				rowLen := w.Shape[1]
				unit := tt.units(rowLen)
				n := len(w.Data) / unit
				k1 := int(math.RoundToEven(0.2 * float64(n)))
				k2 := int(math.RoundToEven(0.2 * float64(n-k1)))
				got := zeros(w.Data)
				if len(got) != (k1+k2)*unit {
					t.Errorf("%s: %d zeros after two prunes by 0.2 of %d units, want (%d + %d) × %d", l.Name, len(got), n, k1, k2, unit)
				}
				for _, i := range firstZeros[l.Name] {
					if _, found := slices.BinarySearch(got, i); !found {
						t.Errorf("%s: entry %d, pruned by the first prune, came back", l.Name, i)
						break
					}
				}
			}
			left := len(second.Model.WeightLayers()[0].Weights[0].Data) - len(zeros(second.Model.WeightLayers()[0].Weights[0].Data))
			_, err = run(t, newContext(t, second.Model.Clone(), nil), map[string]any{"method": "l1_unstructured", "amount": left + 1, "layers": []any{"fc1"}})
			if err == nil {
				t.Errorf("pruning %d of the %d weights left in fc1: no error", left+1, left)
			}
		})
	}
}
