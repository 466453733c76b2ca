package train_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	_ "github.com/shrink-ml/shrink/stages/all"
)

// TestLayersTrainsOnlyThoseLayers: with layers, the named layers train and
// every other one keeps its tensors bit for bit (batch norm statistics too);
// the output model is not frozen; the metrics count the trained values and
// Adam's state for them.
func TestLayersTrainsOnlyThoseLayers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    arch.Spec
		layers  []any
		trained []string
	}{
		{"mlp head", arch.Spec{Arch: "mlp", Inputs: 12, Hidden: []int{10, 8}, Classes: 3}, []any{"fc3"}, []string{"fc3"}},
		{"mlp glob", arch.Spec{Arch: "mlp", Inputs: 12, Hidden: []int{10, 8}, Classes: 3}, []any{"fc[23]"}, []string{"fc2", "fc3"}},
		{"resnet head and a norm", arch.Spec{Arch: "resnet", Depth: 8, Width: 2, Classes: 3, Input: []int{1, 6, 6}}, []any{"fc", "bn1"}, []string{"fc", "bn1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			cfg := testkit.Synthetic(spec.Features(), 3, 120, 16)
			ds := testkit.Load(t, cfg)
			in := model.MustNew(spec, rand.New(rand.NewPCG(1, 1)))
			stage := testkit.Decode(t, "train", map[string]any{"epochs": 1, "layers": tc.layers, "optimizer": map[string]any{"name": "adam", "lr": 0.01}})
			res, err := stage.Run(testkit.Context(t, "head", spec, in.Clone(), ds, &cfg, 3))
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for i, l := range res.Model.Layers {
				if l.Frozen != model.Trainable {
					t.Errorf("%s is still frozen in the output", l.Label())
				}
				b := in.Layers[i]
				same := true
				for j, w := range slices.Concat(l.Weights, l.Params, l.Buffers) {
					same = same && slices.Equal(w.Data, slices.Concat(b.Weights, b.Params, b.Buffers)[j].Data)
				}
				trained := slices.Contains(tc.trained, l.Name)
				if trained {
					for _, w := range slices.Concat(l.Weights, l.Params) {
						want += len(w.Data)
					}
				}
				if len(l.Tensors()) > 0 && trained == same {
					t.Errorf("%s: listed %v, unchanged %v", l.Label(), trained, same)
				}
			}
			if got := res.Metrics["trainable_params"]; got != want {
				t.Errorf("trainable_params %v, want %d", got, want)
			}
			if got := res.Metrics["optimizer_state_bytes"]; got != 8*want {
				t.Errorf("optimizer_state_bytes %v, want %d (Adam: two float32 a value)", got, 8*want)
			}
		})
	}
}

// TestLayersRefusesAdaptedModels: freezing layers of a model that carries
// adapters would mix two notions of frozen; the stage says what to do.
func TestLayersRefusesAdaptedModels(t *testing.T) {
	spec := arch.Spec{Arch: "mlp", Inputs: 12, Hidden: []int{10}, Classes: 3}
	cfg := testkit.Synthetic(12, 3, 60, 16)
	in := model.MustNew(spec, rand.New(rand.NewPCG(1, 1)))
	in.Layer("fc1").Frozen = model.FrozenParams
	if err := in.Layer("fc1").AddAdapter(2, 2, false, 0, rand.New(rand.NewPCG(2, 2))); err != nil {
		t.Fatal(err)
	}
	stage := testkit.Decode(t, "train", map[string]any{"epochs": 1, "layers": []any{"fc2"}})
	_, err := stage.Run(testkit.Context(t, "head", spec, in, testkit.Load(t, cfg), &cfg, 3))
	if err == nil || !strings.Contains(err.Error(), "merge the adapters first") {
		t.Fatalf("error %v", err)
	}
}
