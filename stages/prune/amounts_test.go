package prune

import (
	"math"
	"strings"
	"testing"
)

// TestPerLayerAmounts prunes each listed layer by its own amount and the others
// by amount, as Deep Compression's per-layer rates need.
func TestPerLayerAmounts(t *testing.T) {
	res, err := run(t, newContext(t, mlp(20, []int{30}, 10), nil), map[string]any{
		"method": "l1_unstructured", "amount": 0.5, "amounts": map[string]any{"fc1": 0.9, "fc2": 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"fc1": int(math.RoundToEven(0.9 * 600)), "fc2": 3}
	for _, l := range res.Model.WeightLayers() {
		if got := len(zeros(l.Weights[0].Data)); got != want[l.Name] {
			t.Errorf("%s: %d zeros, want %d", l.Name, got, want[l.Name])
		}
	}
	_, err = run(t, newContext(t, mlp(20, []int{30}, 10), nil), map[string]any{
		"method": "l1_unstructured", "amounts": map[string]any{"fc1": 0.9},
	})
	if err == nil || !strings.Contains(err.Error(), "layer fc2 has no amount") {
		t.Fatalf("a layer without an amount: %v", err)
	}
}

func TestPerLayerAmountsValidation(t *testing.T) {
	for _, tc := range []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"method": "global_unstructured", "amount": 0.5, "amounts": map[string]any{"fc1": 0.9}}, "amounts: global_unstructured prunes all layers by one rule"},
		{map[string]any{"method": "l1_unstructured", "layers": []any{"fc1"}, "amounts": map[string]any{"fc2": 0.9}}, "amounts.fc2: layer fc2 is not in layers"},
		{map[string]any{"method": "l1_unstructured", "layers": []any{"fc1", "fc2"}, "amounts": map[string]any{"fc1": 0.9}}, "amounts: layer fc2 has no amount"},
		{map[string]any{"method": "l1_unstructured", "amounts": map[string]any{"fc1": 1.5}}, "amounts.fc1: a fraction must be in [0, 1]"},
	} {
		c := New()
		err := decodeInto(tc.raw, c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.raw, err, tc.want)
		}
	}
}
