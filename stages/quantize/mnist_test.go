package quantize_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
	"github.com/shrink-ml/shrink/stages"
	_ "github.com/shrink-ml/shrink/stages/all"
)

// The shipped recipes on LeNet-300-100 and MNIST (about a minute on two busy
// cores): int8 per-channel PTQ within 0.2 points of the float model, int4
// per-channel QAT within 1.0 point, the int8 checkpoint at least 3.5x smaller
// than the F32 one, and the accuracies the runner measured equal to evaluating
// the checkpoints read back from disk.
func TestMNISTRecipes(t *testing.T) {
	if testing.Short() {
		t.Skip("trains LeNet-300-100 on MNIST; run without -short")
	}
	cache := t.TempDir() // shared, so the identical train stages run once
	results := map[string]map[string]*runner.StageRecord{}
	dirs := map[string]string{}
	for _, name := range []string{"quantize-int8", "quantize-static", "qat-int4"} {
		recipe, err := pipeline.Load(filepath.Join("..", "..", "recipes", name+".yaml"), stages.Default, pipeline.Options{})
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), name)
		r := runner.New(stages.Default, recipe, runner.Options{RunDir: dir, CacheDir: cache, Log: zerolog.Nop()})
		man, err := r.Run(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		results[name] = map[string]*runner.StageRecord{}
		for _, s := range man.Stages {
			results[name][s.ID] = s
		}
		dirs[name] = r.RunDir()
	}
	acc := func(recipe, stage string) float64 { return results[recipe][stage].Metrics["accuracy"].(float64) }
	size := func(recipe, stage string) int64 {
		st, err := os.Stat(filepath.Join(dirs[recipe], runner.Folder(stage), "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	float := acc("quantize-int8", "train")
	for _, c := range []struct {
		recipe, stage string
		maxDrop       float64
	}{
		{"quantize-int8", "quantize", 0.002},
		{"quantize-static", "static", 0.002},
		{"quantize-static", "static-percentile", 0.002},
		{"qat-int4", "qat4", 0.010},
	} {
		got := acc(c.recipe, c.stage)
		t.Logf("%s/%s: accuracy %.4f (float %.4f), %d bytes", c.recipe, c.stage, got, float, size(c.recipe, c.stage))
		if float-got > c.maxDrop {
			t.Errorf("%s/%s: accuracy %.4f, float %.4f: more than %.1f points lost", c.recipe, c.stage, got, float, 100*c.maxDrop)
		}
	}
	if ratio := float64(size("quantize-int8", "train")) / float64(size("quantize-int8", "quantize")); ratio < 3.5 {
		t.Errorf("int8 checkpoint only %.2fx smaller than the F32 one", ratio)
	}
	// The reported accuracy is the checkpoint's, read back from disk.
	m, err := model.Load(filepath.Join(dirs["qat-int4"], runner.Folder("qat4"), "model.safetensors"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m.WeightLayers() {
		if l.Quant == nil || l.Quant.Bits != 4 || l.Input == nil || l.Input.Mode != "static" {
			t.Errorf("%s: read back as %v %+v", l.Name, l.Quant, l.Input)
		}
	}
	ds, err := data.Load(data.DefaultConfig(), "", 42)
	if err != nil {
		t.Fatal(err)
	}
	res, err := model.Evaluate(context.Background(), m, ds.Test, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accuracy != acc("qat-int4", "qat4") {
		t.Errorf("qat4 checkpoint evaluates to %.4f, the run reported %.4f", res.Accuracy, acc("qat-int4", "qat4"))
	}
}
