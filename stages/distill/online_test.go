package distill

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// TestOnlineUpdatesBothModels: in mutual learning both models train, the
// teacher is returned as the extra output with its accuracy in the metrics, and
// the teacher's input model is not modified in place.
func TestOnlineUpdatesBothModels(t *testing.T) {
	ds, cfg := blobs(t)
	ctx, logs := newContext(t, ds, cfg, t.TempDir(), "")
	teacher, err := ctx.Fresh() // untrained: both start from scratch
	if err != nil {
		t.Fatal(err)
	}
	original := teacher.Clone()
	withTeacher(ctx, teacher, "d")
	res := run(t, ctx, map[string]any{"teacher": "train", "mode": "online", "epochs": 3, "temperature": 2,
		"student": map[string]any{"hidden": []any{6}}, "optimizer": map[string]any{"name": "adam", "lr": 0.01}})

	trained := res.Extra["teacher"]
	if trained == nil {
		t.Fatalf("no teacher among the extra outputs: %v", res.Extra)
	}
	if !slices.Equal(teacher.WeightLayers()[0].Weights[0].Data, original.WeightLayers()[0].Weights[0].Data) {
		t.Error("the input teacher model was changed in place")
	}
	for _, m := range []struct {
		name string
		m    *model.Model
		min  float64
	}{{"student", res.Model, 0.85}, {"teacher", trained, 0.85}} {
		if acc := accuracy(t, m.m, ds.Test); acc < m.min {
			t.Errorf("%s test accuracy %.3f after mutual learning, want at least %.2f", m.name, acc, m.min)
		}
	}
	if slices.Equal(trained.WeightLayers()[0].Weights[0].Data, original.WeightLayers()[0].Weights[0].Data) {
		t.Error("the teacher did not train")
	}
	if got, want := res.Metrics["teacher_accuracy"], accuracy(t, trained, ds.Test); got != want {
		t.Errorf("teacher_accuracy %v, the trained teacher has %v", got, want)
	}
	if res.Metrics["mode"] != Online || res.Metrics["teacher_accuracy_start"] == nil {
		t.Errorf("metrics %v", res.Metrics)
	}
	if !containsAll(logs.String(), `"peer_loss"`, `"phase":"distill-online"`) {
		t.Errorf("epoch log lines should carry the teacher's loss:\n%s", logs)
	}
}

// TestOnlineResumes interrupts mutual learning after its first epoch and runs the
// stage again: it resumes from the saved state of both models and ends exactly
// where an uninterrupted run does.
func TestOnlineResumes(t *testing.T) {
	ds, cfg := blobs(t)
	raw := map[string]any{"teacher": "train", "mode": "online", "epochs": 2, "student": map[string]any{"hidden": []any{6}}}
	var logs *testkit.LogBuffer
	once := func(stateDir string, stopAfterFirstEpoch bool) (*model.Model, *model.Model, error) {
		var ctx *stages.Context
		ctx, logs = newContext(t, ds, cfg, t.TempDir(), stateDir)
		fresh, err := ctx.Fresh()
		if err != nil {
			return nil, nil, err
		}
		withTeacher(ctx, fresh, "d")
		if stopAfterFirstEpoch {
			c, cancel := context.WithCancel(context.Background())
			defer cancel()
			ctx.Context = c
			ctx.Progress = func(p model.Progress) {
				if p.Epoch == 2 {
					cancel()
				}
			}
		}
		cfg, err := decode(t, raw)
		if err != nil {
			t.Fatal(err)
		}
		res, err := cfg.Run(ctx)
		if err != nil {
			return nil, nil, err
		}
		return res.Model, res.Extra["teacher"], nil
	}
	wantS, wantT, err := once("", false)
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	if _, _, err := once(state, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted run returned %v", err)
	}
	gotS, gotT, err := once(state, false)
	if err != nil {
		t.Fatal(err)
	}
	// Starting over would end in the same place too: the log tells them apart.
	if l := logs.String(); !strings.Contains(l, "resuming from the last finished epoch") || strings.Count(l, "epoch done") != 1 {
		t.Fatalf("the second run did not resume after epoch 1:\n%s", l)
	}
	for _, m := range []struct {
		name      string
		got, want *model.Model
	}{{"student", gotS, wantS}, {"teacher", gotT, wantT}} {
		for i, l := range m.got.WeightLayers() {
			if !slices.Equal(l.Weights[0].Data, m.want.WeightLayers()[i].Weights[0].Data) || !slices.Equal(l.Bias().Data, m.want.WeightLayers()[i].Bias().Data) {
				t.Fatalf("%s %s differs from an uninterrupted run", m.name, l.Name)
			}
		}
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
