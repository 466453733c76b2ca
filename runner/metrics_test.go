package runner_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/stages"
)

// TestCommonMetricsAreWhatEveryStageWrites keeps stages.CommonMetrics (which
// select checks metric names against) equal to the keys that stages of every
// type share in their metrics.json.
func TestCommonMetricsAreWhatEveryStageWrites(t *testing.T) {
	const chain = `version: 1
name: metrics
seed: 5
model: {arch: mlp, inputs: 8, hidden: [16], classes: 4}
data: {dataset: synthetic, features: 8, classes: 4, samples: 200, batch_size: 32}
stages:
  train: {type: train, epochs: 1}
  prune: {type: prune, needs: [train], method: l1_unstructured, amount: 0.5}
  quantize: {type: quantize, needs: [prune], bits: 8}
  lowrank: {type: lowrank, needs: [train], rank: 2}
  qat: {type: qat, needs: [train], bits: 4, epochs: 1}
  distill: {type: distill, needs: [train], teacher: train, epochs: 1}
`
	m, err := runSweep(t, t.TempDir(), chain, 1)
	if err != nil {
		t.Fatal(err)
	}
	var shared map[string]bool
	for _, s := range m.Stages {
		keys := map[string]bool{}
		for k := range s.Metrics {
			keys[k] = true
		}
		if shared == nil {
			shared = keys
			continue
		}
		maps.DeleteFunc(shared, func(k string, _ bool) bool { return !keys[k] })
	}
	if got := slices.Sorted(maps.Keys(shared)); !slices.Equal(got, stages.CommonMetrics) {
		t.Errorf("every stage writes %q; stages.CommonMetrics says %q", got, stages.CommonMetrics)
	}
}
