package model_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
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
