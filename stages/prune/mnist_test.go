package prune_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
	"github.com/shrink-ml/shrink/stages"
)

// runShipped runs a recipe from recipes/ into a fresh run folder, with a result
// store shared by the calls of one test (recipes with the same train stage
// train once).
func runShipped(t *testing.T, name, store string, sets ...string) string {
	t.Helper()
	r, err := pipeline.Load(filepath.Join("..", "..", "recipes", name), stages.Default, pipeline.Options{Sets: sets})
	if err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(t.TempDir(), "run")
	opt := runner.Options{RunDir: runDir, CacheDir: store, Log: zerolog.Nop()}
	if man, err := runner.New(stages.Default, r, opt).Run(context.Background()); err != nil {
		for _, s := range man.Stages {
			if s.Error != "" {
				t.Errorf("stage %s: %s", s.ID, s.Error)
			}
		}
		t.Fatal(err)
	}
	return runDir
}

// TestShippedRecipesOnMNIST runs the four one-step prune recipes on MNIST (about
// a minute): each must keep its accuracy and prune what it says. The numbers are
// in docs/PRUNING.md.
func TestShippedRecipesOnMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("MNIST-scale: trains LeNet-300-100")
	}
	store := t.TempDir()
	tests := []struct {
		recipe      string
		minAccuracy float64
		weightsLeft float64 // share of the weights unpruned (structured: of the dense model's)
	}{
		{"prune-l1.yaml", 0.97, 0.1},
		{"prune-global.yaml", 0.97, 0.05},
		{"prune-random.yaml", 0.97, 0.5},
		{"prune-structured.yaml", 0.975, 133600.0 / 266200},
	}
	for _, tt := range tests {
		t.Run(tt.recipe, func(t *testing.T) {
			runDir := runShipped(t, tt.recipe, store)
			m := readMetrics(t, filepath.Join(runDir, "prune", "metrics.json"))
			if acc := m["accuracy"].(float64); acc < tt.minAccuracy {
				t.Errorf("test accuracy %v, want at least %v", acc, tt.minAccuracy)
			}
			nz := m["params_nonzero"].(float64) - biases(t, runDir)
			if left := nz / 266200; left > tt.weightsLeft+0.001 || left < tt.weightsLeft-0.01 {
				t.Errorf("%.4f of the weights left, want %.4f", left, tt.weightsLeft)
			}
			t.Logf("accuracy %v, weights left %.4f", m["accuracy"], nz/266200)
		})
	}
}

// biases counts the bias parameters of a run's prune checkpoint.
func biases(t *testing.T, runDir string) float64 {
	t.Helper()
	m, err := model.Load(filepath.Join(runDir, "prune", "model.safetensors"), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range m.WeightLayers() {
		n += len(l.Bias().Data)
	}
	return float64(n)
}

// TestLotteryTicketMNIST is the acceptance run (5 to 7 minutes on two
// cores, so only when PRUNE_LONG=1): recipes/lottery-ticket.yaml must reach 10%
// or fewer of the weights with test accuracy at most 0.3 points below the dense
// model of round 0, and the random-reinitialization control must do worse than
// the ticket.
//
//	PRUNE_LONG=1 go test ./stages/prune -run LotteryTicketMNIST -v -timeout 30m
func TestLotteryTicketMNIST(t *testing.T) {
	if testing.Short() || os.Getenv("PRUNE_LONG") == "" {
		t.Skip("set PRUNE_LONG=1: trains LeNet-300-100 for 80 epochs plus the control")
	}
	runDir := runShipped(t, "lottery-ticket.yaml", t.TempDir())
	m := readMetrics(t, filepath.Join(runDir, "lottery", "metrics.json"))
	rounds := m["rounds"].([]any)
	dense := rounds[0].(map[string]any)["test_accuracy"].(float64)
	last := rounds[len(rounds)-1].(map[string]any)
	left, acc := last["weights_left"].(float64), last["test_accuracy"].(float64)
	control := last["reinit_test_accuracy"].(float64)
	t.Logf("dense %.4f; ticket %.4f with %.4f of the weights; random reinit %.4f", dense, acc, left, control)
	if left > 0.10 {
		t.Errorf("%.4f of the weights left, want at most 0.10", left)
	}
	if acc < dense-0.003 {
		t.Errorf("ticket %.4f is more than 0.3 points below the dense %.4f", acc, dense)
	}
	if control >= acc {
		t.Errorf("random reinitialization %.4f does as well as the ticket %.4f", control, acc)
	}
}
