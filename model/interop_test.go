package model_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
)

// TestPyTorchResNetEvaluatesAsInPyTorch loads a ResNet that PyTorch trained on
// Fashion-MNIST and saved with its plain state_dict names (testdata/models,
// made by testdata/layers/make_layers.py), and checks shrink counts exactly
// the test images PyTorch got right, with PyTorch's loss and logits.
func TestPyTorchResNetEvaluatesAsInPyTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates a ResNet on 10,000 images")
	}
	testkit.RequireFashion(t)
	var want struct {
		Model       map[string]any `json:"model"`
		Correct     int            `json:"correct"`
		Loss        float64        `json:"loss"`
		FirstLogits [][]float32    `json:"first_logits"`
	}
	b, err := os.ReadFile(testkit.Root() + "/testdata/models/resnet8-fashion.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	spec := arch.Default()
	if errs := config.Decode(testkit.JSONInts(want.Model).(map[string]any), spec); len(errs) > 0 {
		t.Fatal(errs)
	}
	m, err := model.Load(testkit.Root()+"/testdata/models/resnet8-fashion.safetensors", spec)
	if err != nil {
		t.Fatal(err)
	}
	cfg := data.DefaultConfig()
	cfg.Dataset = data.KindFashionMNIST
	ds, err := data.Load(cfg, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := model.Logits(context.Background(), m, ds.Test, 1000)
	if err != nil {
		t.Fatal(err)
	}
	res := model.Score(logits, ds.Test.Y, 10, 1000)
	if correct := int(math.Round(res.Accuracy * float64(res.Samples))); correct != want.Correct {
		t.Errorf("shrink classifies %d of %d test images right, PyTorch %d", correct, res.Samples, want.Correct)
	}
	if math.Abs(res.Loss-want.Loss) > 1e-5 {
		t.Errorf("loss %g, PyTorch %g", res.Loss, want.Loss)
	}
	for i, row := range want.FirstLogits {
		for j, w := range row {
			if g := logits[i*10+j]; math.Abs(float64(g-w)) > 1e-4 {
				t.Errorf("logit [%d, %d] = %g, PyTorch %g", i, j, g, w)
			}
		}
	}
}

// TestShrinkResNetEvaluatesInPyTorch trains a small ResNet in shrink, saves it,
// and has PyTorch evaluate the checkpoint (tools/torchref/eval.py builds the
// module from the model section and loads the file strictly): PyTorch must
// count exactly the test images shrink gets right.
func TestShrinkResNetEvaluatesInPyTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a ResNet and evaluates it twice on 10,000 images")
	}
	testkit.RequireFashion(t)
	testkit.RequireTorch(t)
	section := map[string]any{"arch": "resnet", "depth": 8, "width": 4, "input": []any{1, 28, 28}, "classes": 10}
	spec := arch.Default()
	if errs := config.Decode(section, spec); len(errs) > 0 {
		t.Fatal(errs)
	}
	m := model.MustNew(*spec, rand.New(rand.NewPCG(5, 5)))
	cfg := data.DefaultConfig()
	cfg.Dataset = data.KindFashionMNIST
	ds, err := data.Load(cfg, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	// A few hundred steps: enough that the batch norms' running statistics and
	// the weights are far from their initial values.
	opt := model.TrainOptions{Epochs: 1, BatchSize: 64, Shuffle: true, Optimizer: model.DefaultOptimizer()}
	if err := model.Train(context.Background(), m, ds.Train.Slice(0, 12800), opt, rand.New(rand.NewPCG(6, 6))); err != nil {
		t.Fatal(err)
	}
	res, err := model.Evaluate(context.Background(), m, ds.Test, 1000)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "resnet.safetensors")
	if _, err := m.Save(ckpt, nil); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(section)
	if err := os.WriteFile(filepath.Join(dir, "model.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", filepath.Join(testkit.Root(), "tools", "torchref", "eval.py"), ckpt,
		"--model", filepath.Join(dir, "model.json"), "--data", "fashion-mnist")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("eval.py: %v\n%s", err, out)
	}
	var torch struct {
		Correct int     `json:"correct"`
		Loss    float64 `json:"loss"`
	}
	if err := json.Unmarshal(out, &torch); err != nil {
		t.Fatalf("eval.py printed %q: %v", out, err)
	}
	if correct := int(math.Round(res.Accuracy * float64(res.Samples))); correct != torch.Correct {
		t.Errorf("shrink classifies %d test images right, PyTorch with shrink's checkpoint %d", correct, torch.Correct)
	}
	if math.Abs(res.Loss-torch.Loss) > 1e-5 {
		t.Errorf("loss: shrink %g, PyTorch %g", res.Loss, torch.Loss)
	}
	t.Logf("accuracy %.4f in shrink and in PyTorch (%d images)", res.Accuracy, res.Samples)
}
