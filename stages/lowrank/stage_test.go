package lowrank_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
	"github.com/shrink-ml/shrink/stages"
	_ "github.com/shrink-ml/shrink/stages/all"
	"github.com/shrink-ml/shrink/stages/lowrank"
)

const e2eRecipe = `version: 1
name: lowrank-e2e
seed: 3
model: {arch: mlp, inputs: 16, hidden: [32, 16], classes: 4}
data: {dataset: synthetic, features: 16, classes: 4, samples: 400, batch_size: 32}
stages:
  train: {type: train, epochs: 3, optimizer: {name: adam, lr: 0.01}}
  lowrank:
    type: lowrank
    needs: [train]
    rank: 4
    finetune: {epochs: 1}
`

// run runs a recipe into dir and returns the manifest and the log.
func run(t *testing.T, src, dir string) (*runner.Manifest, string) {
	t.Helper()
	path := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	recipe, err := pipeline.Load(path, stages.Default, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	man, err := runner.New(stages.Default, recipe, runner.Options{RunDir: filepath.Join(dir, "run"), Log: zerolog.New(&log)}).Run(context.Background())
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	return man, log.String()
}

// TestStageEndToEnd runs train -> lowrank (with fine-tuning) through the
// runner on synthetic data and checks the checkpoint, metrics.json and log.
func TestStageEndToEnd(t *testing.T) {
	dir := t.TempDir()
	man, log := run(t, e2eRecipe, dir)
	st := man.Stage("lowrank")
	if st == nil || st.Status != "ran" {
		t.Fatalf("lowrank stage: %+v", st)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "run", "lowrank", "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var metrics struct {
		Accuracy           float64                        `json:"accuracy"`
		Lowrank            map[string]lowrank.LayerReport `json:"lowrank"`
		FactoredLayers     int                            `json:"factored_layers"`
		MultiplyAdds       int                            `json:"multiply_adds"`
		MultiplyAddsBefore int                            `json:"multiply_adds_before"`
		Layers             map[string]struct{ Rank, Params int }
	}
	if err := json.Unmarshal(raw, &metrics); err != nil {
		t.Fatal(err)
	}
	// fc1 16x32 and fc2 32x16: 4 x 48 = 192 < 512 factors; fc3 16x4: 4 x 20 = 80 >= 64 stays dense.
	want := map[string]lowrank.LayerReport{
		"fc1": {Result: lowrank.Factored, Rank: 4, ParamsBefore: 512, Params: 192, MultiplyAddsBefore: 512, MultiplyAdds: 192},
		"fc2": {Result: lowrank.Factored, Rank: 4, ParamsBefore: 512, Params: 192, MultiplyAddsBefore: 512, MultiplyAdds: 192},
		"fc3": {Result: lowrank.KeptDense, Rank: 0, ParamsBefore: 64, Params: 64, MultiplyAddsBefore: 64, MultiplyAdds: 64},
	}
	for name, w := range want {
		got := metrics.Lowrank[name]
		if got.Result != w.Result || got.Rank != w.Rank || got.ParamsBefore != w.ParamsBefore || got.Params != w.Params ||
			got.MultiplyAddsBefore != w.MultiplyAddsBefore || got.MultiplyAdds != w.MultiplyAdds || got.Rule != "rank 4" {
			t.Errorf("%s: %+v, want %+v", name, got, w)
		}
		if metrics.Layers[name].Rank != w.Rank || metrics.Layers[name].Params != w.Params {
			t.Errorf("runner's layer metrics for %s: %+v", name, metrics.Layers[name])
		}
		if w.Result == lowrank.Factored && !(got.ReconstructionError > 0 && got.ReconstructionError < 1 && got.EnergyKept > 0 && got.EnergyKept < 1) {
			t.Errorf("%s: error %g, energy kept %g", name, got.ReconstructionError, got.EnergyKept)
		}
	}
	if metrics.FactoredLayers != 2 || metrics.MultiplyAddsBefore != 1088 || metrics.MultiplyAdds != 448 || metrics.Accuracy < 0.5 {
		t.Errorf("metrics %s", raw)
	}
	if !strings.Contains(log, "layer fc3 stays dense") {
		t.Errorf("no info line about fc3 staying dense in the log:\n%s", log)
	}
	f, err := checkpoint.ReadFile(filepath.Join(dir, "run", "lowrank", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Join(f.Names(), " ")
	if names != "fc1.0.weight fc1.1.bias fc1.1.weight fc2.0.weight fc2.1.bias fc2.1.weight fc3.bias fc3.weight" {
		t.Errorf("checkpoint tensors: %s", names)
	}

	again, _ := run(t, e2eRecipe, dir)
	if s := again.Stage("lowrank"); s.Status != "cached" {
		t.Errorf("rerun: lowrank %s, want cached", s.Status)
	}
}

const laterStagesRecipe = `version: 1
name: lowrank-later
seed: 3
model: {arch: mlp, inputs: 16, hidden: [32, 16], classes: 4}
data: {dataset: synthetic, features: 16, classes: 4, samples: 400, batch_size: 32}
stages:
  train: {type: train, epochs: 3, optimizer: {name: adam, lr: 0.01}}
  prune: {type: prune, needs: [train], method: l1_unstructured, amount: 0.5, layers: [fc1]}
  lowrank-pruned: {type: lowrank, needs: [prune], rank: 4, layers: [fc1]}
  lowrank: {type: lowrank, needs: [train], rank: 4}
  prune-factors: {type: prune, needs: [lowrank], method: l1_unstructured, amount: 0.5, layers: [fc1], finetune: {epochs: 1}}
  qat: {type: qat, needs: [lowrank], epochs: 1, optimizer: {name: adam, lr: 0.001}}
  distill: {type: distill, needs: [lowrank], teacher: train, epochs: 1, temperature: 4, alpha: 0.5}
  quantize: {type: quantize, needs: [lowrank], mode: dynamic, bits: 8}
  relowrank: {type: lowrank, needs: [quantize], ranks: {fc1: 2}}
`

// TestLaterStagesKeepFactors runs the other compressions after lowrank (and
// prune before it): every later stage, training ones included, keeps fc1 as
// two factors, acts on the factors, and trains them.
func TestLaterStagesKeepFactors(t *testing.T) {
	dir := t.TempDir()
	_, log := run(t, laterStagesRecipe, dir)
	read := func(stage string) *checkpoint.File {
		t.Helper()
		f, err := checkpoint.ReadFile(filepath.Join(dir, "run", stage, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	floats := func(f *checkpoint.File, name string) []float32 {
		t.Helper()
		tn, ok := f.Get(name)
		if !ok {
			t.Fatalf("no %s", name)
		}
		v, err := tn.Float32s()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return v
	}
	factored := read("lowrank")
	for _, tc := range []struct {
		stage   string
		rank    int
		dtype   checkpoint.DType
		trained bool // the factors moved: the stage trained them
	}{
		{"lowrank-pruned", 4, checkpoint.DTypeF32, false},
		{"prune-factors", 4, checkpoint.DTypeF32, true},
		{"qat", 4, checkpoint.DTypeI8, true},
		{"distill", 4, checkpoint.DTypeF32, true},
		{"quantize", 4, checkpoint.DTypeI8, false},
		{"relowrank", 2, checkpoint.DTypeI8, false},
	} {
		t.Run(tc.stage, func(t *testing.T) {
			f := read(tc.stage)
			for _, name := range []string{"fc1.0.weight", "fc1.1.weight"} {
				tn, ok := f.Get(name)
				if !ok || tn.DType != tc.dtype {
					t.Fatalf("%s: missing or not %s (tensors: %v)", name, tc.dtype, f.Names())
				}
			}
			if tn, _ := f.Get("fc1.0.weight"); tn.Shape[0] != tc.rank {
				t.Errorf("fc1.0.weight %v, want rank %d", tn.Shape, tc.rank)
			}
			if _, ok := f.Get("fc1.weight"); ok {
				t.Error("a dense fc1.weight is back")
			}
			if tc.trained && tc.dtype == checkpoint.DTypeF32 {
				if slices.Equal(floats(f, "fc1.0.weight"), floats(factored, "fc1.0.weight")) ||
					slices.Equal(floats(f, "fc1.1.weight"), floats(factored, "fc1.1.weight")) {
					t.Error("a factor did not change while training")
				}
			}
		})
	}
	// Pruning a factored layer prunes its factors: half of them, together.
	zeros := 0
	f := read("prune-factors")
	for _, name := range []string{"fc1.0.weight", "fc1.1.weight"} {
		for _, x := range floats(f, name) {
			if x == 0 {
				zeros++
			}
		}
	}
	if zeros < 96 { // 0.5 of 16x4 + 32x4 = 192 weights
		t.Errorf("prune after lowrank left %d zeros in fc1's factors, want at least 96", zeros)
	}
	if !strings.Contains(log, `"level":"warn"`) || !strings.Contains(log, "layer fc1 is pruned: its factors are dense") {
		t.Errorf("no warning about factoring a pruned layer:\n%s", log)
	}
}
