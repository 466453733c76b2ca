package runner_test

import (
	"strings"
	"testing"
)

// twoData trains on one synthetic dataset, then fine-tunes on another that
// the second stage's data key names (SAMPLES).
const twoData = `version: 1
name: twodata
seed: 3
model: {arch: mlp, inputs: 8, hidden: [12], classes: 4}
data: {dataset: synthetic, features: 8, classes: 4, samples: 400, batch_size: 32}
stages:
  pre:
    type: train
    epochs: 2
    optimizer: {name: adam, lr: 0.01}
  adapt:
    type: train
    needs: [pre]
    epochs: 1
    data: {samples: SAMPLES, batch_size: 16}
`

// TestStageDataTrainsAndEvaluatesOnIt: a stage with a data key trains and is
// evaluated on that data (its test split), its key follows that data, and
// the other stages' keys do not change with it.
func TestStageDataTrainsAndEvaluatesOnIt(t *testing.T) {
	dir := t.TempDir()
	m, err := runSweep(t, dir, strings.Replace(twoData, "SAMPLES", "200", 1), 1)
	if err != nil {
		t.Fatal(err)
	}
	pre, adapt := m.Stage("pre"), m.Stage("adapt")
	if got := pre.Metrics["test_samples"]; got != float64(80) && got != 80 {
		t.Errorf("pre evaluated on %v samples, want the recipe's 80", got)
	}
	if got := adapt.Metrics["test_samples"]; got != float64(40) && got != 40 {
		t.Errorf("adapt evaluated on %v samples, want its own data's 40", got)
	}
	if pre.KeyDoc.Data == adapt.KeyDoc.Data || string(pre.KeyDoc.Batching) == string(adapt.KeyDoc.Batching) {
		t.Errorf("adapt's key holds the recipe's data: %s %s", adapt.KeyDoc.Data, adapt.KeyDoc.Batching)
	}

	m2, err := runSweep(t, dir, strings.Replace(twoData, "SAMPLES", "300", 1), 1)
	if err != nil {
		t.Fatal(err)
	}
	if s := statuses(m2); s["pre"] != "cached" || s["adapt"] != "ran" {
		t.Fatalf("after changing adapt's data: %v, want pre cached and adapt run", s)
	}
	if m2.Stage("pre").Key != pre.Key {
		t.Error("pre's key changed with adapt's data")
	}
	if !strings.Contains(m2.Stage("adapt").Reason, "data") {
		t.Errorf("adapt reran because %q; want the data named", m2.Stage("adapt").Reason)
	}
}
