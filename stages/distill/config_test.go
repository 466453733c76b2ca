package distill

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
	_ "github.com/shrink-ml/shrink/stages/train" // teachers in the recipes below
)

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     map[string]any
		wantErr string // "" for a valid config
	}{
		{"teacher stage", map[string]any{"teacher": "train"}, ""},
		{"teacher file", map[string]any{"teacher_checkpoint": "t.safetensors"}, ""},
		{"both teachers", map[string]any{"teacher": "train", "teacher_checkpoint": "t.safetensors"}, "teacher_checkpoint: name the teacher once"},
		{"no teacher", map[string]any{}, "teacher: missing: alpha 0.5 gives the teacher's logits weight 0.5"},
		{"no teacher, labels only", map[string]any{"alpha": 1, "student": map[string]any{"hidden": []any{30}}}, ""},
		{"no teacher online", map[string]any{"alpha": 1, "mode": "online"}, "teacher: missing: online distillation trains the teacher"},
		{"alpha above 1", map[string]any{"teacher": "train", "alpha": 1.5}, "alpha: 1.5 is above the maximum 1"},
		{"temperature 0", map[string]any{"teacher": "train", "temperature": 0}, "temperature: 0 must be greater than 0"},
		{"unknown mode", map[string]any{"teacher": "train", "mode": "onlin"}, `mode: "onlin" is not one of offline, online`},
		{"student channels on mlp", map[string]any{"teacher": "train", "student": map[string]any{"arch": "mlp", "channels": []any{4, 8}}}, "student.channels: applies only to lenet5"},
		{"student lenet5 widths", map[string]any{"teacher": "train", "student": map[string]any{"arch": "lenet5", "hidden": []any{30}}}, "student.hidden: lenet5 has two hidden fc layers"},
		{"student checkpoint", map[string]any{"teacher": "train", "student": map[string]any{"checkpoint": "s.safetensors"}}, "student.checkpoint: unknown key"},
		{"training keys", map[string]any{"teacher": "train", "epochs": 3, "batch_size": 64, "optimizer": map[string]any{"name": "sgd", "lr": 0.1}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(t, tc.raw)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := decode(t, map[string]any{"teacher": "train"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Temperature != 4 || c.Alpha != 0.5 || c.Mode != Offline || c.Epochs != 1 || c.Optimizer.Name != "adam" {
		t.Fatalf("defaults: %+v", c)
	}
	if c.MakesModel() {
		t.Error("MakesModel without a student")
	}
	if got := c.References(); !slices.Equal(got, []config.Ref{{Path: "teacher", Stage: "train"}}) {
		t.Errorf("References() = %v", got)
	}
	if got := c.FileReferences(); got != nil {
		t.Errorf("FileReferences() = %v, want none", got)
	}
	c, _ = decode(t, map[string]any{"teacher_checkpoint": "t.safetensors", "student": map[string]any{"hidden": []any{30}}})
	if !c.MakesModel() || c.References() != nil || !slices.Equal(c.FileReferences(), []config.FileRef{{Path: "teacher_checkpoint", File: "t.safetensors"}}) {
		t.Errorf("teacher_checkpoint with a student: MakesModel %v, References %v, FileReferences %v", c.MakesModel(), c.References(), c.FileReferences())
	}
}

// TestTeacherIsADagEdge loads recipes through the pipeline: the teacher orders
// the stages and must exist.
func TestTeacherIsADagEdge(t *testing.T) {
	const head = "version: 1\nname: t\nmodel: {arch: mlp, inputs: 784, classes: 10}\ndata: {dataset: mnist}\nstages:\n"
	for _, tc := range []struct {
		name, stages string
		order        []string
		wantErr      string
	}{
		{"teacher runs first", "  student:\n    type: distill\n    teacher: big\n    student: {hidden: [30]}\n  big:\n    type: train\n",
			[]string{"big", "student"}, ""},
		{"unknown teacher", "  student:\n    type: distill\n    teacher: bigg\n  big:\n    type: train\n",
			nil, `stages.student.teacher: unknown stage "bigg"`},
		{"teacher cycle", "  a:\n    type: distill\n    teacher: b\n  b:\n    type: distill\n    teacher: a\n",
			nil, "cycle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.yaml")
			if err := os.WriteFile(path, []byte(head+tc.stages), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := pipeline.Load(path, stages.Default, pipeline.Options{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.StageIDs(); !slices.Equal(got, tc.order) {
				t.Fatalf("run order %v, want %v", got, tc.order)
			}
			if ref := r.Stage("student").Ref("teacher"); ref != "big" {
				t.Fatalf("student's teacher ref = %q", ref)
			}
		})
	}
}
