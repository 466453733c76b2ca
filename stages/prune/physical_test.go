package prune

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
)

// logits runs m on n seeded random inputs.
func logits(t *testing.T, m *model.Model, n int) []float32 {
	t.Helper()
	features := 1
	for _, d := range m.Spec.InputShape() {
		features *= d
	}
	rng := rand.New(rand.NewPCG(11, 12))
	x := make([]float32, n*features)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	out, err := model.Logits(context.Background(), m, &data.Split{X: x, Y: make([]int32, n), N: n, Features: features}, n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPhysicalKeepsLogits is the strong test of physical pruning: units whose
// weights are all pruned still output relu(bias), so removing them is only
// right if that constant moves into the next layer's bias. A model pruned with
// masks and the same model with those units removed must give the same logits;
// the smaller model must reload from its checkpoint with the new widths.
func TestPhysicalKeepsLogits(t *testing.T) {
	tests := []struct {
		name    string
		spec    arch.Spec
		layers  []any
		widths  map[string]int     // after removing half the units
		prepare func(*model.Model) // changes the start model
	}{
		{"mlp", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16, 10}, Classes: 5}, []any{"fc1", "fc2"},
			map[string]int{"fc1": 8, "fc2": 5, "fc3": 5}, nil},
		{"mlp fc1 only", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16, 10}, Classes: 5}, []any{"fc1"},
			map[string]int{"fc1": 8, "fc2": 10, "fc3": 5}, nil},
		{"mlp, next layer factored", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16, 10}, Classes: 5}, []any{"fc1"},
			map[string]int{"fc1": 8, "fc2": 10, "fc3": 5}, func(m *model.Model) { factor(m.WeightLayers()[1], 3) }},
		{"lenet5", arch.Spec{Arch: "lenet5", Classes: 10}, []any{"conv1", "conv2", "fc1", "fc2"},
			map[string]int{"conv1": 3, "conv2": 8, "fc1": 60, "fc2": 42, "fc3": 10}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := model.MustNew(tt.spec, rand.New(rand.NewPCG(5, 6)))
			if tt.prepare != nil {
				tt.prepare(start)
			}
			// An unstructured prune of the next layers first: their masks must
			// lose the removed inputs' columns and still reload.
			masked, err := run(t, newContext(t, start, nil), map[string]any{"method": "l1_unstructured", "amount": 0.3})
			if err != nil {
				t.Fatal(err)
			}
			structured, err := run(t, newContext(t, masked.Model, nil),
				map[string]any{"method": "ln_structured", "amount": 0.5, "n": 2, "layers": tt.layers})
			if err != nil {
				t.Fatal(err)
			}
			want := logits(t, structured.Model, 16)

			// Removing the units already zero-masked (amount 0 prunes nothing new).
			res, err := run(t, newContext(t, structured.Model.Clone(), nil),
				map[string]any{"method": "ln_structured", "amount": 0, "physical": true, "layers": tt.layers})
			if err != nil {
				t.Fatal(err)
			}
			small := res.Model
			for _, l := range small.WeightLayers() {
				if l.Units() != tt.widths[l.Name] {
					t.Errorf("%s has %d units, want %d", l.Name, l.Units(), tt.widths[l.Name])
				}
			}
			got := logits(t, small, 16)
			scale := testkit.MaxDiff(want, make([]float32, len(want)))
			if d := testkit.MaxDiff(got, want); d > 1e-5*max(scale, 1) {
				t.Errorf("logits differ by %g after removing dead units (logits up to %g)", d, scale)
			}
			// The folding matters: the dead units' relu(bias) reached the logits.
			next := small.WeightLayers()[len(small.WeightLayers())-1]
			if slices.Equal(next.Bias().Data, structured.Model.WeightLayers()[len(small.WeightLayers())-1].Bias().Data) && len(tt.layers) > 1 {
				t.Error("no bias changed: the dead units contributed nothing and the test proves little")
			}

			// Pruning and removing in one step gives the same model.
			direct, err := run(t, newContext(t, masked.Model, nil),
				map[string]any{"method": "ln_structured", "amount": 0.5, "n": 2, "physical": true, "layers": tt.layers})
			if err != nil {
				t.Fatal(err)
			}
			if d := testkit.MaxDiff(logits(t, direct.Model, 16), got); d != 0 {
				t.Errorf("prune+remove in one stage differs from two stages by %g", d)
			}

			// The checkpoint records the new widths and reloads bit for bit.
			path := filepath.Join(t.TempDir(), "small.safetensors")
			if _, err := small.Save(path, nil); err != nil {
				t.Fatal(err)
			}
			back, err := model.Load(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := testkit.MaxDiff(logits(t, back, 16), got); d != 0 {
				t.Errorf("reloaded model's logits differ by %g", d)
			}
			for i, l := range back.WeightLayers() {
				if !slices.Equal(l.Weights[0].Data, small.WeightLayers()[i].Weights[0].Data) || l.Pruned != small.WeightLayers()[i].Pruned {
					t.Errorf("%s changed through the checkpoint", l.Name)
				}
			}
			if res.Metrics["removed_units"].(map[string]int)["fc1"] == 0 {
				t.Error("metrics report no units removed from fc1")
			}
		})
	}
}

// factor turns a dense layer into a rank-k product of two factors (drawn, not
// fitted: only the structure matters here).
func factor(l *model.Layer, k int) {
	rng := rand.New(rand.NewPCG(8, 9))
	a, b := make([]float32, k*l.FanIn()), make([]float32, l.Units()*k)
	for _, w := range [][]float32{a, b} {
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.3)
		}
	}
	l.SetFactors(a, b)
}

// TestPhysicalErrors checks what physical pruning refuses, with messages that
// say what to do.
func TestPhysicalErrors(t *testing.T) {
	factored := mlp(20, []int{16}, 5)
	factor(factored.WeightLayers()[0], 2)
	tests := []struct {
		name string
		m    *model.Model
		raw  map[string]any
		want string
	}{
		{"output layer", mlp(20, []int{16}, 5), map[string]any{"layers": []any{"fc1", "fc2"}}, "layer fc2 is the output layer"},
		// amount: 1.0 is refused while decoding (config_test.go); a layer's own
		// amount reaches the run.
		{"every unit", mlp(20, []int{16}, 5), map[string]any{"amounts": map[string]any{"fc1": 1.0}}, "layer fc1: every one of its 16 units is pruned"},
		{"factored", factored, map[string]any{"layers": []any{"fc1"}}, "layer fc1 is factored (lowrank, rank 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := map[string]any{"method": "ln_structured", "amount": 0.5, "physical": true}
			for k, v := range tt.raw {
				raw[k] = v
			}
			_, err := run(t, newContext(t, tt.m, nil), raw)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
