package distill

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
	"github.com/shrink-ml/shrink/stages"
)

// TestRecipeThroughTheRunner runs distill stages as shrink run does, on
// synthetic data: a teacher stage, an offline student from a checkpoint file and
// an online pair. It checks the files written, that a rerun reuses everything,
// that a forced rerun reuses the cached teacher logits, and that editing the
// teacher file reruns the stage that reads it.
func TestRecipeThroughTheRunner(t *testing.T) {
	dir := t.TempDir()
	teacherFile := filepath.Join(dir, "teacher.safetensors")
	ds, _ := blobs(t)
	if _, err := trainedTeacher(t, ds, 2).Save(teacherFile, nil); err != nil {
		t.Fatal(err)
	}
	recipe := filepath.Join(dir, "r.yaml")
	src := `version: 1
name: distill-e2e
seed: 1
model: {arch: mlp, inputs: 8, hidden: [16], classes: 4}
data: {dataset: synthetic, features: 8, classes: 4, samples: 1000, batch_size: 32}
stages:
  big:
    type: train
    epochs: 2
  small:
    type: distill
    teacher_checkpoint: teacher.safetensors
    student: {hidden: [6]}
    epochs: 2
  mutual:
    type: distill
    mode: online
    teacher: big
    student: {hidden: [6]}
    epochs: 2
`
	if err := os.WriteFile(recipe, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(dir, "run")
	runOnce := func(opt runner.Options) (*runner.Manifest, string) {
		t.Helper()
		r, err := pipeline.Load(recipe, stages.Default, pipeline.Options{})
		if err != nil {
			t.Fatal(err)
		}
		logs := &testkit.LogBuffer{}
		opt.RunDir, opt.Log = runDir, zerolog.New(logs)
		m, err := runner.New(stages.Default, r, opt).Run(context.Background())
		if err != nil {
			t.Fatalf("%v\n%s", err, logs)
		}
		return m, logs.String()
	}
	status := func(m *runner.Manifest) string {
		var parts []string
		for _, s := range m.Stages {
			parts = append(parts, s.ID+"="+s.Status)
		}
		return strings.Join(parts, " ")
	}

	m, logs := runOnce(runner.Options{})
	if got := status(m); got != "big=ran small=ran mutual=ran" {
		t.Fatalf("first run: %s", got)
	}
	if !strings.Contains(logs, "teacher logits computed and cached") {
		t.Errorf("first run computed no teacher logits:\n%s", logs)
	}
	for _, f := range []string{"small/model.safetensors", "mutual/model.safetensors", "mutual/teacher.safetensors"} {
		if _, err := model.Load(filepath.Join(runDir, f), nil); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	mutual := m.Stage("mutual")
	if acc, ok := mutual.Metrics["teacher_accuracy"].(float64); !ok || acc < 0.5 {
		t.Errorf("mutual metrics: %v", mutual.Metrics)
	}

	if m, _ := runOnce(runner.Options{}); status(m) != "big=cached small=cached mutual=cached" {
		t.Fatalf("unchanged rerun: %s", status(m))
	}
	if _, logs := runOnce(runner.Options{Force: true}); !strings.Contains(logs, "teacher logits reused from the cache") || strings.Contains(logs, "teacher logits computed") {
		t.Fatalf("a forced rerun should reuse the teacher logits:\n%s", logs)
	}

	// A new teacher file: the stage reading it reruns, computing new logits.
	if _, err := trainedTeacher(t, ds, 1).Save(teacherFile, nil); err != nil {
		t.Fatal(err)
	}
	m, logs = runOnce(runner.Options{})
	if got := status(m); got != "big=cached small=ran mutual=cached" {
		t.Fatalf("after editing the teacher file: %s", got)
	}
	if !strings.Contains(logs, "teacher logits computed and cached") {
		t.Errorf("the new teacher's logits were not computed:\n%s", logs)
	}
}
