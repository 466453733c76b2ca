package distill

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
	"github.com/shrink-ml/shrink/stages"
)

func run(t *testing.T, ctx *stages.Context, raw map[string]any) *stages.Result {
	t.Helper()
	c, err := decode(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestOfflineStudentFromScratch distills a narrower student from a trained
// teacher: it learns, has the student's shape, and a rerun reuses the logits.
func TestOfflineStudentFromScratch(t *testing.T) {
	ds, cfg := blobs(t)
	teacher := trainedTeacher(t, ds, 3)
	cache := t.TempDir()
	raw := map[string]any{"teacher": "train", "temperature": 2, "epochs": 3, "student": map[string]any{"hidden": []any{6}},
		"optimizer": map[string]any{"name": "adam", "lr": 0.01}}
	var first *model.Model
	for i, want := range []string{"teacher logits computed and cached", "teacher logits reused from the cache"} {
		ctx, logs := newContext(t, ds, cfg, cache, "")
		withTeacher(ctx, teacher, "teacher-digest")
		ctx.InputMetrics["train"] = map[string]any{"accuracy": 0.9}
		res := run(t, ctx, raw)
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("run %d: no %q in the logs:\n%s", i+1, want, logs)
		}
		if got := res.Model.Spec.Hidden; !slices.Equal(got, []int{6}) || res.Model.Spec.Inputs != 8 || res.Model.Spec.Classes != 4 {
			t.Fatalf("student spec %+v, want 8-6-4", res.Model.Spec)
		}
		if res.Metrics["teacher_accuracy"] != 0.9 || res.Metrics["teacher"] != "train" || res.Metrics["mode"] != Offline {
			t.Errorf("metrics %v", res.Metrics)
		}
		if i == 0 {
			first = res.Model
			continue
		}
		// Same seed, same teacher logits (read back): the same student.
		if !slices.Equal(first.WeightLayers()[0].Weights[0].Data, res.Model.WeightLayers()[0].Weights[0].Data) {
			t.Error("the rerun trained a different student")
		}
	}
	if acc := accuracy(t, first, ds.Test); acc < 0.85 {
		t.Errorf("distilled student's test accuracy %.3f, want at least 0.85 (the teacher has %.3f)", acc, accuracy(t, teacher, ds.Test))
	}
}

// TestAlphaOneIsLabelOnlyTraining: with alpha 1 the stage is exactly training the
// student on the labels (what a train stage does), bit for bit, whether or not a
// teacher is named, and no teacher logits are computed.
func TestAlphaOneIsLabelOnlyTraining(t *testing.T) {
	ds, cfg := blobs(t)
	training := stages.DefaultTraining(2)
	ctx, _ := newContext(t, ds, cfg, "", "")
	want, err := ctx.Fresh()
	if err != nil {
		t.Fatal(err)
	}
	if err := ctx.Train("train", want, training, model.Loss{}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		raw  map[string]any
	}{
		{"no teacher", map[string]any{"alpha": 1, "epochs": 2, "student": map[string]any{}}},
		{"teacher named", map[string]any{"teacher": "train", "alpha": 1, "epochs": 2, "student": map[string]any{"hidden": []any{16}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			ctx, logs := newContext(t, ds, cfg, cache, "")
			withTeacher(ctx, trainedTeacher(t, ds, 1), "d")
			got := run(t, ctx, tc.raw).Model
			for i, l := range got.WeightLayers() {
				if !slices.Equal(l.Weights[0].Data, want.WeightLayers()[i].Weights[0].Data) || !slices.Equal(l.Bias().Data, want.WeightLayers()[i].Bias().Data) {
					t.Fatalf("%s differs from label-only training", l.Name)
				}
			}
			if !strings.Contains(logs.String(), "alpha is 1") {
				t.Errorf("no log line saying the teacher is not consulted:\n%s", logs)
			}
			if files, _ := filepath.Glob(filepath.Join(cache, "*", "*")); len(files) > 0 {
				t.Errorf("teacher logits were computed: %v", files)
			}
		})
	}
}

// TestCompressedStudentStaysCompressed distills into a pruned and quantized
// student: its zeros stay zero, its layers stay quantized (the checkpoint holds
// int8 weights that read back to the same values), and it recovers accuracy.
func TestCompressedStudentStaysCompressed(t *testing.T) {
	ds, cfg := blobs(t)
	teacher := trainedTeacher(t, ds, 3)
	student := teacher.Clone()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, l := range student.WeightLayers() {
		w := l.Weights[0]
		w.Mask = make([]float32, len(w.Data))
		for i := range w.Mask {
			if rng.IntN(2) == 0 { // keep about half of the weights
				w.Mask[i] = 1
			}
		}
		l.Pruned = true
		l.Quant = &quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
	}
	student.ApplyMasks()
	student.Requantize()
	before := accuracy(t, student, ds.Test)

	ctx, _ := newContext(t, ds, cfg, t.TempDir(), "")
	withTeacher(ctx, teacher, "teacher-digest")
	ctx.Input = student
	res := run(t, ctx, map[string]any{"teacher": "train", "epochs": 3, "optimizer": map[string]any{"name": "adam", "lr": 0.01}})
	got := res.Model

	path := filepath.Join(t.TempDir(), "student.safetensors")
	if _, err := got.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	back, err := model.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range got.WeightLayers() {
		w := l.Weights[0]
		if !l.Pruned || l.Quant == nil || l.Quant.Bits != 4 {
			t.Fatalf("%s lost its compression: pruned %v, quant %v", l.Name, l.Pruned, l.Quant)
		}
		for j, k := range student.WeightLayers()[i].Weights[0].Mask {
			if k == 0 && w.Data[j] != 0 {
				t.Fatalf("%s.weight[%d] = %g: a pruned weight came back", l.Name, j, w.Data[j])
			}
		}
		if _, ok := f.Get(l.Name + ".weight_packed"); !ok {
			t.Fatalf("%s is not stored pack-quantized: %v", l.Name, f.Names())
		}
		if !slices.Equal(back.WeightLayers()[i].Weights[0].Data, w.Data) {
			t.Fatalf("%s: the stored integers do not stand for the trained weights", l.Name)
		}
		if slices.Equal(w.Data, student.WeightLayers()[i].Weights[0].Data) {
			t.Errorf("%s did not train", l.Name)
		}
	}
	after := accuracy(t, back, ds.Test)
	t.Logf("teacher %.3f, compressed student %.3f before distillation, %.3f after", accuracy(t, teacher, ds.Test), before, after)
	if after <= before {
		t.Errorf("distillation did not recover accuracy: %.3f before, %.3f after", before, after)
	}
}

// TestTeacherCheckpoint reads the teacher from a file the config names; the
// logits are keyed by the file's digest.
func TestTeacherCheckpoint(t *testing.T) {
	ds, cfg := blobs(t)
	dir := t.TempDir()
	teacher := trainedTeacher(t, ds, 2)
	digest, err := teacher.Save(filepath.Join(dir, "teacher.safetensors"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, logs := newContext(t, ds, cfg, t.TempDir(), "")
	ctx.FileDigests["teacher_checkpoint"] = digest
	ctx.LoadCheckpoint = func(p string) (*model.Model, error) { return model.Load(filepath.Join(dir, p), &recipeSpec) }
	res := run(t, ctx, map[string]any{"teacher_checkpoint": "teacher.safetensors", "student": map[string]any{"hidden": []any{6}}})
	if res.Metrics["teacher"] != "teacher.safetensors" {
		t.Errorf("metrics %v", res.Metrics)
	}
	if acc, ok := res.Metrics["teacher_accuracy"].(float64); !ok || acc != accuracy(t, teacher, ds.Test) {
		t.Errorf("teacher_accuracy %v, want the file's model's %v", res.Metrics["teacher_accuracy"], accuracy(t, teacher, ds.Test))
	}
	if !strings.Contains(logs.String(), "teacher logits computed") {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestStudentArchitectureErrors(t *testing.T) {
	ds, cfg := blobs(t)
	for _, tc := range []struct {
		name    string
		raw     map[string]any
		input   bool
		wantErr string
	}{
		{"student with needs", map[string]any{"teacher": "train", "student": map[string]any{"hidden": []any{4}}}, true, "remove needs"},
		{"classes differ from the teacher's", map[string]any{"teacher": "train", "student": map[string]any{"classes": 3}}, false, "the teacher (train) has 4 classes and the student 3"},
		{"lenet5 student of an 8-feature mlp", map[string]any{"teacher": "train", "mode": "online", "student": map[string]any{"arch": "lenet5", "classes": 4}}, false, "inputs per sample"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, _ := newContext(t, ds, cfg, t.TempDir(), "")
			withTeacher(ctx, mustFresh(t, ctx), "d")
			if tc.input {
				ctx.Input = mustFresh(t, ctx)
			}
			c, err := decode(t, tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestTeacherLogitsFollowTheShuffle: with alpha 0 the labels are never seen, so
// the student learns only if every row gets its own teacher logits through the
// shuffled batches.
func TestTeacherLogitsFollowTheShuffle(t *testing.T) {
	ds, cfg := blobs(t)
	if !cfg.Shuffle {
		t.Fatal("the blobs must be shuffled for this test")
	}
	teacher := trainedTeacher(t, ds, 3)
	ctx, _ := newContext(t, ds, cfg, t.TempDir(), "")
	withTeacher(ctx, teacher, "d")
	res := run(t, ctx, map[string]any{"teacher": "train", "alpha": 0, "temperature": 1, "epochs": 3,
		"student": map[string]any{"hidden": []any{6}}, "optimizer": map[string]any{"name": "adam", "lr": 0.01}})
	if acc, want := accuracy(t, res.Model, ds.Test), accuracy(t, teacher, ds.Test); acc < want-0.05 {
		t.Fatalf("student %.3f from the teacher's logits alone, the teacher has %.3f: rows and logits are misaligned", acc, want)
	}
}
