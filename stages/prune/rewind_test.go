package prune

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/model"
)

// TestRewindSnapshotAndResume checks rewind: {epoch: K}. With K the last epoch
// of the first training, the rewind point is the dense model itself, so the
// saved snapshot must equal round 0's checkpoint. A second run in the same
// state folder resumes every phase as finished, never sees epoch K end, takes
// the snapshot from disk, and must produce the same ticket bit for bit.
func TestRewindSnapshotAndResume(t *testing.T) {
	raw := map[string]any{
		"method": "lottery_ticket", "rounds": 2, "rate": 0.5, "rewind": map[string]any{"epoch": 2},
		"train": map[string]any{"epochs": 2, "optimizer": map[string]any{"name": "adam", "lr": 0.005}},
	}
	state := t.TempDir()
	first := newContext(t, mlp(16, []int{12}, 4), synthetic(16, 4))
	first.StateDir = state
	a, err := run(t, first, raw)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := model.Load(filepath.Join(state, "lottery-rewind.safetensors"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dense, err := model.Load(filepath.Join(first.Dir, "round-00", "model.safetensors"), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := mlp(16, []int{12}, 4)
	for i, l := range snap.WeightLayers() {
		if !slices.Equal(l.Weights[0].Data, dense.WeightLayers()[i].Weights[0].Data) {
			t.Errorf("%s: the snapshot after epoch 2 of 2 is not the dense model", l.Name)
		}
		if slices.Equal(l.Weights[0].Data, start.WeightLayers()[i].Weights[0].Data) {
			t.Errorf("%s: the snapshot holds the initial weights", l.Name)
		}
	}

	again := newContext(t, mlp(16, []int{12}, 4), synthetic(16, 4))
	again.StateDir = state
	b, err := run(t, again, raw)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range b.Model.WeightLayers() {
		if !slices.Equal(l.Weights[0].Data, a.Model.WeightLayers()[i].Weights[0].Data) || !slices.Equal(l.Bias().Data, a.Model.WeightLayers()[i].Bias().Data) {
			t.Errorf("%s: the resumed run's ticket differs", l.Name)
		}
	}
}
