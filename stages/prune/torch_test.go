package prune

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
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
)

// requireTorchEnv, set to 1 (as CI does), turns a missing PyTorch from a
// skipped test into a failed one, as in model/interop_test.go.
const requireTorchEnv = "SHRINK_REQUIRE_TORCH"

// TestPrunedResNet20EvaluatesInPyTorch trains a ResNet-20 briefly on
// Fashion-MNIST, removes channel groups until it keeps at most half its MACs
// (group_norm, target macs 0.5, physical), trains the narrow model a little
// (its batch norms' statistics move on the new shapes), and has PyTorch build
// the narrow network from the checkpoint's arch and load the checkpoint
// strictly (tools/torchref/eval.py): every tensor must have the pruned shape,
// and PyTorch must count exactly the test images shrink gets right.
func TestPrunedResNet20EvaluatesInPyTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a ResNet-20 and evaluates it twice on 10,000 images")
	}
	testkit.RequireFashion(t)
	if err := exec.Command("/usr/bin/python3", "-c", "import torch, numpy").Run(); err != nil {
		if os.Getenv(requireTorchEnv) == "1" {
			t.Fatalf("%s=1 but /usr/bin/python3 cannot import torch: %v", requireTorchEnv, err)
		}
		t.Skipf("PyTorch is not installed (apt-get install python3-torch; %s=1 makes this a failure)", requireTorchEnv)
	}
	cfg := data.DefaultConfig()
	cfg.Dataset = data.KindFashionMNIST
	ds, err := data.Load(cfg, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	spec := arch.Spec{Arch: arch.ResNet, Depth: 20, Input: arch.Shape{1, 28, 28}, Classes: 10}
	dense := model.MustNew(spec, rand.New(rand.NewPCG(5, 5)))
	opt := model.TrainOptions{Epochs: 1, BatchSize: 64, Shuffle: true, Optimizer: model.DefaultOptimizer()}
	if err := model.Train(context.Background(), dense, ds.Train.Slice(0, 3200), opt, rand.New(rand.NewPCG(6, 6))); err != nil {
		t.Fatal(err)
	}

	res, err := run(t, newContext(t, dense, nil), map[string]any{"method": "group_norm", "target": map[string]any{"macs": 0.5}, "physical": true})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Model
	if ratio := float64(m.Graph.MACs()) / float64(dense.Graph.MACs()); ratio > 0.5 {
		t.Fatalf("the pruned ResNet-20 keeps %.3f of its MACs, want at most half", ratio)
	}
	if err := model.Train(context.Background(), m, ds.Train.Slice(3200, 4800), opt, rand.New(rand.NewPCG(7, 7))); err != nil {
		t.Fatal(err)
	}
	got, err := model.Evaluate(context.Background(), m, ds.Test, 1000)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	ckpt := filepath.Join(dir, "pruned.safetensors")
	if _, err := m.Save(ckpt, nil); err != nil {
		t.Fatal(err)
	}
	// The checkpoint holds the narrow shapes: conv1 made fewer than 16
	// channels and layer1.0.conv1 reads exactly that many.
	f, err := checkpoint.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	c1, ok1 := f.Get("conv1.weight")
	next, ok2 := f.Get("layer1.0.conv1.weight")
	if !ok1 || !ok2 {
		t.Fatal("conv1.weight or layer1.0.conv1.weight missing from the checkpoint")
	}
	if c1.Shape[0] >= 16 || next.Shape[1] != c1.Shape[0] {
		t.Errorf("conv1.weight %v, layer1.0.conv1.weight %v: want fewer than 16 channels, read by the next layer", c1.Shape, next.Shape)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.json"), []byte(m.Spec.JSON()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", filepath.Join(testkit.Root(), "tools", "torchref", "eval.py"), ckpt,
		"--model", filepath.Join(dir, "model.json"), "--data", "fashion-mnist")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if e, ok := err.(*exec.ExitError); ok {
			stderr = e.Stderr
		}
		t.Fatalf("eval.py: %v\n%s%s", err, out, stderr)
	}
	var torch struct {
		Correct int     `json:"correct"`
		Loss    float64 `json:"loss"`
	}
	if err := json.Unmarshal(out, &torch); err != nil {
		t.Fatalf("eval.py printed %q: %v", out, err)
	}
	if correct := int(math.Round(got.Accuracy * float64(got.Samples))); correct != torch.Correct {
		t.Errorf("shrink classifies %d test images right, PyTorch with shrink's pruned checkpoint %d", correct, torch.Correct)
	}
	if math.Abs(got.Loss-torch.Loss) > 1e-5 {
		t.Errorf("loss: shrink %g, PyTorch %g", got.Loss, torch.Loss)
	}
	t.Logf("MACs %d of %d (%.3f), accuracy %.4f in shrink and in PyTorch", m.Graph.MACs(), dense.Graph.MACs(),
		float64(m.Graph.MACs())/float64(dense.Graph.MACs()), got.Accuracy)
}
