package prune

import (
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/shrink-ml/shrink/internal/testkit"
)

// TestOracleMasks reproduces every torch.nn.utils.prune vector: the masks and
// the stored weights exactly, and layers the call did not list untouched.
func TestOracleMasks(t *testing.T) {
	tests := []struct {
		file string
		raw  map[string]any
	}{
		{"prune_l1_float.safetensors", map[string]any{"method": "l1_unstructured", "amount": 0.375}},
		{"prune_l1_int.safetensors", map[string]any{"method": "l1_unstructured", "amount": 7}},
		{"prune_global_float.safetensors", map[string]any{"method": "global_unstructured", "amount": 0.5}},
		{"prune_global_int.safetensors", map[string]any{"method": "global_unstructured", "amount": 50, "layers": []any{"fc1", "fc2"}}},
		{"prune_ln_n2_dim0.safetensors", map[string]any{"method": "ln_structured", "amount": 0.25, "n": 2, "dim": 0}},
		{"prune_ln_n1_dim1.safetensors", map[string]any{"method": "ln_structured", "amount": 0.5, "n": 1, "dim": 1}},
		{"prune_ln_n2_dim1_int.safetensors", map[string]any{"method": "ln_structured", "amount": 2, "n": 2, "dim": 1}},
		{"prune_ln_n1_dim0.safetensors", map[string]any{"method": "ln_structured", "amount": 0.1, "n": 1, "dim": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in := testkit.OracleModel(t)
			res, err := run(t, newContext(t, in, nil), tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			want := testkit.Oracle(t, tt.file)
			var counts map[string]int
			if err := json.Unmarshal([]byte(want.Metadata["pruned_counts"]), &counts); err != nil {
				t.Fatal(err)
			}
			for i, l := range res.Model.WeightLayers() {
				w := l.Weights[0]
				orig := in.WeightLayers()[i].Weights[0].Data
				if _, listed := want.Get(w.Name + "_mask"); !listed {
					if !slices.Equal(w.Data, orig) || l.Pruned {
						t.Errorf("%s is not in the call but changed", l.Name)
					}
					continue
				}
				mask := testkit.Floats(t, want, w.Name+"_mask")
				if !slices.Equal(w.Mask, mask) {
					t.Errorf("%s mask\n got %v\nwant %v", l.Name, w.Mask, mask)
				}
				if got := testkit.Floats(t, want, w.Name); !slices.Equal(w.Data, got) {
					t.Errorf("%s weight differs from PyTorch's weight * mask", l.Name)
				}
				if got := len(zeros(w.Mask)); got != counts[l.Name] {
					t.Errorf("%s: %d pruned, PyTorch %d", l.Name, got, counts[l.Name])
				}
				if !l.Pruned {
					t.Errorf("%s is not marked pruned", l.Name)
				}
			}
		})
	}
}

// TestOracleRandomCounts checks random_unstructured's counts (which entries go
// depends on the random source, so only the counts compare with PyTorch), and
// that the draw changes with the seed but not between runs with the same one.
func TestOracleRandomCounts(t *testing.T) {
	want := testkit.Oracle(t, "prune_random_counts.safetensors")
	raw := map[string]any{"method": "random_unstructured", "amount": 0.5}
	first, err := run(t, newContext(t, testkit.OracleModel(t), nil), raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range first.Model.WeightLayers() {
		c, _ := want.Get(l.Name + ".weight_pruned_count")
		n, err := c.Int64s()
		if err != nil {
			t.Fatal(err)
		}
		if got := len(zeros(l.Weights[0].Mask)); int64(got) != n[0] {
			t.Errorf("%s: %d pruned, PyTorch %d", l.Name, got, n[0])
		}
	}
	again, err := run(t, newContext(t, testkit.OracleModel(t), nil), raw)
	if err != nil {
		t.Fatal(err)
	}
	other := newContext(t, testkit.OracleModel(t), nil)
	other.Rand.Uint64() // a different point in the stream: a different draw
	third, err := run(t, other, raw)
	if err != nil {
		t.Fatal(err)
	}
	w1, w2, w3 := first.Model.WeightLayers()[1].Weights[0], again.Model.WeightLayers()[1].Weights[0], third.Model.WeightLayers()[1].Weights[0]
	if !slices.Equal(w1.Mask, w2.Mask) {
		t.Error("the same random source gave different masks")
	}
	if slices.Equal(w1.Mask, w3.Mask) {
		t.Error("a different random source gave the same 48-of-96 mask")
	}
}

// TestOracleCounts reproduces prune_counts.json: PyTorch's amount -> count rule,
// round half to even on the float64 product.
func TestOracleCounts(t *testing.T) {
	b, err := os.ReadFile(testkit.OraclePath("prune_counts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		Cases []struct {
			Amount float64 `json:"amount"`
			IsInt  bool    `json:"amount_is_int"`
			Size   int     `json:"size"`
			Count  int     `json:"count"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range table.Cases {
		a := Fraction(c.Amount)
		if c.IsInt {
			a = Count(int(c.Amount))
		}
		t.Run(a.String()+"_of_"+strconv.Itoa(c.Size), func(t *testing.T) {
			got, err := a.Of(c.Size, "weights")
			if err != nil || got != c.Count {
				t.Errorf("amount %s of %d = %d, %v; PyTorch %d", a, c.Size, got, err, c.Count)
			}
		})
	}
}
