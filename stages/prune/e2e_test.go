package prune_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
	"github.com/shrink-ml/shrink/stages"
	_ "github.com/shrink-ml/shrink/stages/all"
)

// runRecipe runs a recipe through the pipeline and the runner, as shrink run
// does, in a fresh run folder; it returns the folder.
func runRecipe(t *testing.T, recipe string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(path, []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.Load(path, stages.Default, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(dir, "run")
	man, err := runner.New(stages.Default, r, runner.Options{RunDir: runDir, Log: zerolog.Nop()}).Run(context.Background())
	if err != nil {
		for _, s := range man.Stages {
			if s.Error != "" {
				t.Errorf("stage %s: %s", s.ID, s.Error)
			}
		}
		t.Fatal(err)
	}
	return runDir
}

// tensor reads one F32 tensor of a checkpoint in a run folder.
func tensor(t *testing.T, runDir, file, name string) []float32 {
	t.Helper()
	f, err := checkpoint.ReadFile(filepath.Join(runDir, file))
	if err != nil {
		t.Fatal(err)
	}
	tt, ok := f.Get(name)
	if !ok {
		t.Fatalf("%s has no %s (it has %v)", file, name, f.Names())
	}
	v, err := tt.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readMetrics(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

const header = `version: 1
name: prune-test
seed: 3
model: {arch: mlp, inputs: 16, hidden: [24, 12], classes: 4}
data: {dataset: synthetic, features: 16, classes: 4, samples: 400, batch_size: 32}
`

// TestStickyZerosThroughTraining prunes, fine-tunes, then trains again in a
// later stage with Adam: every pruned weight is still an exact zero in the last
// checkpoint, read back from disk, while the others kept learning.
func TestStickyZerosThroughTraining(t *testing.T) {
	runDir := runRecipe(t, header+`stages:
  train:
    type: train
    epochs: 1
  prune:
    type: prune
    needs: [train]
    method: l1_unstructured
    amount: 0.6
    finetune: {epochs: 1}
  again:
    type: train
    needs: [prune]
    epochs: 2
    optimizer: {name: adam, lr: 0.01}
`)
	for _, name := range []string{"fc1.weight", "fc2.weight", "fc3.weight"} {
		pruned := tensor(t, runDir, "prune/model.safetensors", name)
		later := tensor(t, runDir, "again/model.safetensors", name)
		var zeros, moved int
		for i := range pruned {
			switch {
			case pruned[i] == 0 && later[i] != 0:
				t.Fatalf("%s[%d] was pruned but is %g after training", name, i, later[i])
			case pruned[i] == 0:
				zeros++
			case later[i] != pruned[i]:
				moved++
			}
		}
		if want := len(pruned) * 6 / 10; zeros < want {
			t.Errorf("%s: %d zeros, want at least %d", name, zeros, want)
		}
		if moved == 0 {
			t.Errorf("%s: training changed no weight: the test proves nothing", name)
		}
	}
	m := readMetrics(t, filepath.Join(runDir, "again", "metrics.json"))
	if ws := m["weight_sparsity"].(float64); ws < 0.6 {
		t.Errorf("weight sparsity after training %g, want at least 0.6", ws)
	}
}

// TestPruneTwiceAcrossStages reloads a pruned checkpoint and prunes it again:
// the masks come back from the stored zeros, so the second prune counts only
// the survivors.
func TestPruneTwiceAcrossStages(t *testing.T) {
	runDir := runRecipe(t, header+`stages:
  first:
    type: prune
    method: l1_unstructured
    amount: 0.2
  second:
    type: prune
    needs: [first]
    method: l1_unstructured
    amount: 0.2
`)
	m := readMetrics(t, filepath.Join(runDir, "second", "metrics.json"))
	pruned := m["pruned"].(map[string]any)
	// fc1 has 384 weights: 77 go first (76.8), then 61 of the 307 left (61.4).
	if got := pruned["fc1.weight"].(float64); got != 61 {
		t.Errorf("second prune of fc1 took %v, want 61", got)
	}
	zeros := 0
	for _, x := range tensor(t, runDir, "second/model.safetensors", "fc1.weight") {
		if x == 0 {
			zeros++
		}
	}
	if zeros != 77+61 {
		t.Errorf("fc1 has %d zeros, want %d", zeros, 77+61)
	}
}

// TestLotteryTicketRounds runs three rounds on synthetic data: every round's
// checkpoint and metrics are in the stage folder, and each layer keeps exactly
// what pruning rate of the remaining weights per round leaves (the output
// layer at half the rate).
func TestLotteryTicketRounds(t *testing.T) {
	runDir := runRecipe(t, header+`stages:
  lottery:
    type: prune
    method: lottery_ticket
    rounds: 3
    rate: 0.5
    control: random_reinit
    train: {epochs: 2, optimizer: {name: adam, lr: 0.005}}
`)
	sizes := map[string]int{"fc1": 16 * 24, "fc2": 24 * 12, "fc3": 12 * 4}
	left := map[string]int{"fc1": 384, "fc2": 288, "fc3": 48}
	for r := 0; r <= 3; r++ {
		dir := filepath.Join(runDir, "lottery", roundDir(r))
		if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
		m := readMetrics(t, filepath.Join(dir, "metrics.json"))
		if r > 0 {
			for name, n := range left {
				rate := 0.5
				if name == "fc3" {
					rate = 0.25
				}
				left[name] = n - int(math.RoundToEven(rate*float64(n)))
			}
			if _, ok := m["reinit_test_accuracy"]; !ok {
				t.Errorf("round %d: no reinit_test_accuracy", r)
			}
		}
		layers := m["layer_weights_left"].(map[string]any)
		kept := 0
		for name, n := range left {
			want := float64(n) / float64(sizes[name])
			if got := layers[name].(float64); !near(got, want) {
				t.Errorf("round %d: %s has %v of its weights left, want %v", r, name, got, want)
			}
			f := tensor(t, runDir, "lottery/"+roundDir(r)+"/model.safetensors", name+".weight")
			nz := 0
			for _, x := range f {
				if x != 0 {
					nz++
				}
			}
			if nz != n {
				t.Errorf("round %d: %s checkpoint has %d non-zeros, want %d", r, name, nz, n)
			}
			kept += n
		}
		if got := m["weights_kept"].(float64); int(got) != kept {
			t.Errorf("round %d: weights_kept %v, want %d", r, got, kept)
		}
		if acc := m["test_accuracy"].(float64); acc < 0.5 {
			t.Errorf("round %d: test accuracy %v: training did not work", r, acc)
		}
	}
	m := readMetrics(t, filepath.Join(runDir, "lottery", "metrics.json"))
	if m["selected_round"].(float64) != 3 {
		t.Errorf("selected round %v, want the last (3)", m["selected_round"])
	}
	if rounds := m["rounds"].([]any); len(rounds) != 4 {
		t.Errorf("%d rounds in the stage metrics, want 4 (dense + 3)", len(rounds))
	}
}

// TestLotteryBestVal picks the round with the best validation accuracy.
func TestLotteryBestVal(t *testing.T) {
	runDir := runRecipe(t, strings.Replace(header, "batch_size: 32}", "batch_size: 32, validation_split: 0.25}", 1)+`stages:
  lottery:
    type: prune
    method: lottery_ticket
    rounds: 3
    rate: 0.6
    rewind: {epoch: 1}
    select: best_val
    train: {epochs: 2, optimizer: {name: adam, lr: 0.005}}
`)
	m := readMetrics(t, filepath.Join(runDir, "lottery", "metrics.json"))
	best, bestVal := 0, -1.0
	for _, r := range m["rounds"].([]any)[1:] {
		rr := r.(map[string]any)
		if v := rr["val_accuracy"].(float64); v >= bestVal {
			best, bestVal = int(rr["round"].(float64)), v
		}
	}
	if got := int(m["selected_round"].(float64)); got != best {
		t.Errorf("selected round %d, best validation accuracy in round %d", got, best)
	}
	want := tensor(t, runDir, "lottery/"+roundDir(best)+"/model.safetensors", "fc1.weight")
	got := tensor(t, runDir, "lottery/model.safetensors", "fc1.weight")
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("the stage output is not round %d's model", best)
		}
	}
}

func roundDir(r int) string { return fmt.Sprintf("round-%02d", r) }

func near(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }
