package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
	"github.com/shrink-ml/shrink/stages"
	_ "github.com/shrink-ml/shrink/stages/all"
)

// sweep is a branching recipe on synthetic data: two pruning amounts times
// two bit widths, a select with a constraint relative to the dense model, and
// a distillation of the winner from it. AMOUNTS is replaced by each test.
const sweep = `version: 1
name: sweep
seed: 5
model: {arch: mlp, inputs: 8, hidden: [16], classes: 4}
data: {dataset: synthetic, features: 8, classes: 4, samples: 400, batch_size: 32}
stages:
  train:
    type: train
    epochs: 3
    optimizer: {name: adam, lr: 0.01}
  prune:
    type: prune
    needs: [train]
    method: l1_unstructured
    matrix: {amount: AMOUNTS}
  quantize:
    type: quantize
    needs: [prune]
    matrix: {bits: [8, 4]}
  best:
    type: select
    needs: [quantize]
    metric: [params_nonzero, size_bytes]
    goal: min
    where:
      accuracy: {relative_to: train, min: -0.5}
  distill:
    type: distill
    needs: [best]
    teacher: train
    epochs: 1
`

// runSweep writes the recipe into dir and runs it into dir/run.
func runSweep(t *testing.T, dir, src string, jobs int) (*runner.Manifest, error) {
	t.Helper()
	path := filepath.Join(dir, "sweep.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.Load(path, stages.Default, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.LogBuffer{}
	m, err := runner.New(stages.Default, r, runner.Options{RunDir: filepath.Join(dir, "run"), Jobs: jobs, Log: zerolog.New(logs)}).Run(context.Background())
	if err != nil && !errors.Is(err, runner.ErrStageFailed) {
		t.Fatalf("%v\n%s", err, logs)
	}
	return m, err
}

func statuses(m *runner.Manifest) map[string]string {
	out := map[string]string{}
	for _, s := range m.Stages {
		out[s.ID] = s.Status
	}
	return out
}

func TestBranchesSelectAndDistill(t *testing.T) {
	dir := t.TempDir()
	m, err := runSweep(t, dir, strings.Replace(sweep, "AMOUNTS", "[0.5, 0.8]", 1), 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range m.Stages {
		got = append(got, s.ID)
	}
	want := []string{"train", "prune[amount=0.5]", "prune[amount=0.8]",
		"quantize[amount=0.5,bits=8]", "quantize[amount=0.5,bits=4]", "quantize[amount=0.8,bits=8]", "quantize[amount=0.8,bits=4]",
		"best", "distill"}
	if !slices.Equal(got, want) {
		t.Fatalf("stages\n got %v\nwant %v", got, want)
	}
	q := m.Stage("quantize[amount=0.8,bits=4]")
	if q.Folder != "quantize@amount=0.8,bits=4" || !slices.Equal(q.Needs, []string{"prune[amount=0.8]"}) {
		t.Errorf("branch folder %q, needs %v", q.Folder, q.Needs)
	}
	if _, err := os.Stat(filepath.Join(dir, "run", q.Folder, "model.safetensors")); err != nil {
		t.Error(err)
	}

	// The winner, worked out here from the candidates' own metrics: fewest
	// nonzero weights, then the smallest file, within 0.5 of train's accuracy.
	best := m.Stage("best")
	floor := number(m.Stage("train").Metrics["accuracy"]) - 0.5
	var win *runner.StageRecord
	for _, id := range best.Needs {
		c := m.Stage(id)
		if number(c.Metrics["accuracy"]) < floor {
			continue
		}
		if win == nil || less(c, win) {
			win = c
		}
	}
	if best.Metrics["selected"] != win.ID || win.ID != "quantize[amount=0.8,bits=8]" && win.ID != "quantize[amount=0.8,bits=4]" {
		t.Fatalf("selected %v, want %s", best.Metrics["selected"], win.ID)
	}
	if best.SHA256 != win.SHA256 {
		t.Errorf("the select's checkpoint differs from the winner's: %s vs %s", best.SHA256, win.SHA256)
	}
	// metrics.json as users read it: the choice and the table of candidates.
	var shown struct {
		Selected   string `json:"selected"`
		Reason     string `json:"reason"`
		Candidates []struct {
			Stage  string             `json:"stage"`
			Values map[string]float64 `json:"values"`
		} `json:"candidates"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "run", "best", "metrics.json"))
	if err != nil || json.Unmarshal(b, &shown) != nil {
		t.Fatalf("best/metrics.json: %v\n%s", err, b)
	}
	if shown.Selected != win.ID || len(shown.Candidates) != 4 || shown.Candidates[3].Stage != "quantize[amount=0.8,bits=4]" ||
		shown.Candidates[3].Values["params_nonzero"] != number(m.Stage(shown.Candidates[3].Stage).Metrics["params_nonzero"]) ||
		!strings.HasPrefix(shown.Reason, win.ID+" has the smallest params_nonzero ") {
		t.Errorf("best/metrics.json:\n%s", b)
	}
	d := m.Stage("distill")
	if !slices.Equal(d.Needs, []string{"best"}) || d.Refs["teacher"] != "train" || d.Status != "ran" {
		t.Errorf("distill after select: needs %v, refs %v, %s", d.Needs, d.Refs, d.Status)
	}
}

// less orders candidates as the recipe's select does: params_nonzero, then size_bytes.
func less(a, b *runner.StageRecord) bool {
	for _, k := range []string{"params_nonzero", "size_bytes"} {
		x, y := number(a.Metrics[k]), number(b.Metrics[k])
		if x != y {
			return x < y
		}
	}
	return false
}

// number reads a metric: float64 from run.json, int or int64 in a fresh manifest.
func number(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case float64:
		return x
	}
	panic(fmt.Sprintf("metric %v (%T) is not a number", v, v))
}

func TestParallelRunMatchesSequential(t *testing.T) {
	src := strings.Replace(sweep, "AMOUNTS", "[0.5, 0.8, 0.3]", 1)
	seqDir, parDir := t.TempDir(), t.TempDir()
	seq, err := runSweep(t, seqDir, src, 1)
	if err != nil {
		t.Fatal(err)
	}
	par, err := runSweep(t, parDir, src, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(seq.Stages) != 12 || len(par.Stages) != len(seq.Stages) {
		t.Fatalf("%d and %d stages", len(seq.Stages), len(par.Stages))
	}
	for i, s := range seq.Stages {
		p := par.Stages[i]
		// Digest the files themselves, not only what run.json says of them.
		a, errA := checkpoint.Digest(filepath.Join(seqDir, "run", s.Folder, "model.safetensors"))
		b, errB := checkpoint.Digest(filepath.Join(parDir, "run", p.Folder, "model.safetensors"))
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if s.ID != p.ID || a != b || a != s.SHA256 || b != p.SHA256 || s.Status != "ran" || p.Status != "ran" {
			t.Errorf("%s: --jobs 1 gave %.12s (%s), --jobs 2 gave %s %.12s (%s)", s.ID, a, s.Status, p.ID, b, p.Status)
		}
	}
}

func TestAddingAMatrixValueRunsOnlyTheNewBranch(t *testing.T) {
	dir := t.TempDir()
	first, err := runSweep(t, dir, strings.Replace(sweep, "AMOUNTS", "[0.5, 0.8]", 1), 2)
	if err != nil {
		t.Fatal(err)
	}
	m, err := runSweep(t, dir, strings.Replace(sweep, "AMOUNTS", "[0.5, 0.8, 0.3]", 1), 2)
	if err != nil {
		t.Fatal(err)
	}
	for id, status := range statuses(m) {
		want := "cached"
		if strings.Contains(id, "amount=0.3") || id == "best" { // the select has a new candidate
			want = "ran"
		}
		if status != want {
			t.Errorf("%s %s, want %s", id, status, want)
		}
	}
	// The 0.3 branch does not win (it keeps more weights), so the select's
	// output is byte for byte the same and the distillation after it is cached.
	if a, b := first.Stage("best").SHA256, m.Stage("best").SHA256; a != b {
		t.Errorf("the select's checkpoint changed: %.12s -> %.12s", a, b)
	}
	if len(m.Stages) != 12 {
		t.Errorf("%d stages, want 12", len(m.Stages))
	}
}

func TestSelectWithNoQualifyingCandidateFails(t *testing.T) {
	src := strings.Replace(sweep, "AMOUNTS", "[0.5]", 1)
	src = strings.Replace(src, "{relative_to: train, min: -0.5}", "{relative_to: train, min: 0.5}", 1)
	m, err := runSweep(t, t.TempDir(), src, 1)
	if !errors.Is(err, runner.ErrStageFailed) {
		t.Fatalf("got %v, want a failed stage", err)
	}
	best := m.Stage("best")
	for _, want := range []string{
		"no candidate qualifies (constraints: accuracy >= ",
		"quantize[amount=0.5,bits=8]: accuracy ",
		"quantize[amount=0.5,bits=4]: accuracy ",
		"(train's ",
	} {
		if best.Status != "failed" || !strings.Contains(best.Error, want) {
			t.Errorf("best %s: %q lacks %q", best.Status, best.Error, want)
		}
	}
	if d := m.Stage("distill"); d.Status != "skipped" || d.Reason != "needs best, which failed" {
		t.Errorf("distill %s (%s)", d.Status, d.Reason)
	}
}
