package onnximport_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/export/onnxexport"
	"github.com/shrink-ml/shrink/internal/npy"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/onnx/onnximport"
)

// The fixtures in testdata come from make_fixtures.py there: torch.onnx.export
// of a trained ResNet-8 (batch norms folded, and kept) and of a trained
// two-layer LSTM classifier, with PyTorch's logits on the first test images
// and its accuracy on the whole Fashion-MNIST test set.

type fixtureInfo struct {
	Accuracy float64        `json:"accuracy"`
	Correct  int            `json:"correct"`
	First    int            `json:"first"`
	Model    map[string]any `json:"model"`
}

func fixtures(t *testing.T) map[string]fixtureInfo {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]fixtureInfo{}
	for k, v := range raw {
		var f fixtureInfo
		if json.Unmarshal(v, &f) == nil && f.First > 0 {
			out[k] = f
		}
	}
	return out
}

// fashionTest is the Fashion-MNIST test set in a layout, or skips (fails
// under SHRINK_REQUIRE_FASHION=1) when the files are not installed.
func fashionTest(t *testing.T, layout string) *data.Split {
	t.Helper()
	if _, err := data.FindFashionMNIST(); err != nil {
		if os.Getenv("SHRINK_REQUIRE_FASHION") == "1" {
			t.Fatalf("SHRINK_REQUIRE_FASHION=1 but Fashion-MNIST is not available: %v", err)
		}
		t.Skipf("Fashion-MNIST is not available (apt-get install dataset-fashion-mnist): %v", err)
	}
	cfg := data.DefaultConfig()
	cfg.Dataset = data.KindFashionMNIST
	cfg.Layout = layout
	ds, err := data.Load(cfg, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	return ds.Test
}

// importFixture imports testdata/NAME.onnx and builds its model.
func importFixture(t *testing.T, name string) (*onnximport.Result, *model.Model) {
	t.Helper()
	res, err := onnximport.ReadFile(filepath.Join("testdata", name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.FromFile(res.Weights, &res.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return res, m
}

// matchesTorch compares the imported model with PyTorch: the logits of the
// first test images to float32 rounding (relative 1e-4 of the row's
// largest), the accuracy on the whole test set.
func matchesTorch(t *testing.T, name string, m *model.Model, test *data.Split, want fixtureInfo) {
	t.Helper()
	ref, err := npy.ReadFile(filepath.Join("testdata", name+"_logits.npy"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := model.Logits(context.Background(), m, test.Slice(0, want.First), 100)
	if err != nil {
		t.Fatal(err)
	}
	wantLogits := ref.Data.([]float32)
	classes := m.Spec.Classes
	var worst float64
	for r := 0; r < want.First; r++ {
		row := wantLogits[r*classes : (r+1)*classes]
		var peak float64
		for _, v := range row {
			peak = max(peak, math.Abs(float64(v)))
		}
		for c, v := range row {
			d := math.Abs(float64(got[r*classes+c]) - float64(v))
			worst = max(worst, d/max(peak, 1))
		}
	}
	if worst > 1e-4 {
		t.Errorf("logits differ from PyTorch's by up to %.3g of the row's largest (want <= 1e-4)", worst)
	}
	res, err := model.Evaluate(context.Background(), m, test, 1000)
	if err != nil {
		t.Fatal(err)
	}
	correct := int(math.Round(res.Accuracy * float64(test.N)))
	t.Logf("%s: logits within %.2g relative; accuracy %.4f (%d correct), PyTorch %.4f (%d)", name, worst, res.Accuracy, correct, want.Accuracy, want.Correct)
	if correct != want.Correct {
		t.Errorf("accuracy %.4f (%d correct), PyTorch's %.4f (%d)", res.Accuracy, correct, want.Accuracy, want.Correct)
	}
}

// The ResNet exported with its batch norms folded imports as the resnet
// preset's convolutions with biases (the folded batch norms) under their
// module paths, and evaluates to PyTorch's accuracy.
func TestTorchResNetFolded(t *testing.T) {
	res, m := importFixture(t, "resnet8")
	for _, l := range m.Layers {
		if l.Type == "batchnorm2d" {
			t.Errorf("layer %s is a batch norm: the exporter folded them all", l.Name)
		}
	}
	preset := presetWeightLayers(t, "resnet8")
	var convs []string
	for _, n := range preset {
		if !strings.Contains(n, "bn") && !strings.HasSuffix(n, "downsample.1") {
			convs = append(convs, n)
		}
	}
	if got := m.LayerNames(); !slices.Equal(got, convs) {
		t.Errorf("weight layers %v, want the preset's convolutions and fc %v", got, convs)
	}
	if len(res.Notes) == 0 {
		t.Error("no note on the folded batch norms")
	}
	matchesTorch(t, "resnet8", m, fashionTest(t, data.LayoutImage), fixtures(t)["resnet8"])
}

// The ResNet exported without constant folding imports as the resnet
// preset itself: every tensor of the state_dict PyTorch trained, bit for
// bit, under its name.
func TestTorchResNetBatchNorm(t *testing.T) {
	res, m := importFixture(t, "resnet8_bn")
	preset := presetWeightLayers(t, "resnet8")
	if got := m.LayerNames(); !slices.Equal(got, preset) {
		t.Errorf("weight layers %v, want the preset's %v", got, preset)
	}
	state, err := checkpoint.ReadFile(filepath.Join("..", "..", "testdata", "models", "resnet8-fashion.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range state.Tensors {
		got, ok := res.Weights.Get(want.Name)
		switch {
		case !ok:
			t.Errorf("%s: not imported", want.Name)
		case want.DType == checkpoint.DTypeI64:
			// num_batches_tracked: ONNX does not carry it.
		case !slices.Equal(got.Shape, want.Shape) || string(got.Data) != string(want.Data):
			t.Errorf("%s: %v, want the state_dict's %v bit for bit", want.Name, got.Shape, want.Shape)
		}
	}
	if len(res.Weights.Tensors) != len(state.Tensors) {
		t.Errorf("%d tensors imported, the state_dict has %d", len(res.Weights.Tensors), len(state.Tensors))
	}
	matchesTorch(t, "resnet8", m, fashionTest(t, data.LayoutImage), fixtures(t)["resnet8"])
}

// presetWeightLayers are the weight layers of a fixture's model section.
func presetWeightLayers(t *testing.T, name string) []string {
	t.Helper()
	b, _ := json.Marshal(fixtures(t)[name].Model)
	spec, err := arch.Parse(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return spec.LayerNames()
}

// The LSTM classifier (two stacked layers, the last step, fc) imports as the
// lstm preset: ONNX's LSTM nodes merged into one two-layer lstm whose gates
// are back in PyTorch's order, the transposes and the zero initial states
// folded; without an lstm layer type the import says which node needs it.
func TestTorchLSTM(t *testing.T) {
	if _, ok := arch.LayerTypeOf("lstm"); !ok {
		_, err := onnximport.ReadFile(filepath.Join("testdata", "lstm2.onnx"))
		if err == nil || !strings.Contains(err.Error(), "/lstm/LSTM (LSTM)") || !strings.Contains(err.Error(), "layer type lstm") {
			t.Fatalf("import without an lstm layer type: %v, want an error naming node /lstm/LSTM and the type", err)
		}
		return
	}
	res, m := importFixture(t, "lstm2")
	want := presetWeightLayers(t, "lstm2")
	if got := m.LayerNames(); !slices.Equal(got, want) {
		t.Errorf("weight layers %v, want %v", got, want)
	}
	if res.Spec.Layers[0].Type != "lstm" || res.Spec.Layers[1].Type != "last" {
		t.Errorf("layers %v", res.Spec.Layers)
	}
	test := fashionTest(t, data.LayoutSequence)
	info := fixtures(t)["lstm2"]
	matchesTorch(t, "lstm2", m, test, info)

	// Exported again (LSTM nodes in ONNX's gate order), onnxruntime computes
	// PyTorch's logits from shrink's file.
	exp, err := onnxexport.Export(m, onnxexport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lstm2-shrink.onnx")
	if err := exp.Model.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	ortest.Check(t, path)
	first := test.Slice(0, info.First)
	out := ortest.Find(t).Run(t, path, map[string]*npy.Array{"input": {Shape: append([]int{first.N}, first.SampleShape()...), Data: first.X}}, ortest.Options{})
	ref, err := npy.ReadFile(filepath.Join("testdata", "lstm2_logits.npy"))
	if err != nil {
		t.Fatal(err)
	}
	got, torch := out.Outputs["logits"].Data.([]float32), ref.Data.([]float32)
	var worst float64
	for i, w := range torch {
		worst = max(worst, math.Abs(float64(got[i])-float64(w))/max(1, math.Abs(float64(w))))
	}
	t.Logf("onnxruntime on shrink's export: within %.2g of PyTorch's logits", worst)
	if worst > 1e-4 {
		t.Errorf("onnxruntime on shrink's export differs from PyTorch's logits by up to %.3g", worst)
	}
}

// The small fixtures of package onnx (onnx/testdata/torch, gen.py): a conv
// net with a folded batch norm, max pooling and Flatten, and a one-layer LSTM
// classifier reading h_n[-1]; each imports to PyTorch's output on its input.
func TestTorchSmallFixtures(t *testing.T) {
	for _, name := range []string{"convnet", "lstm"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "testdata", "torch")
			res, err := onnximport.ReadFile(filepath.Join(dir, name+".onnx"))
			if name == "lstm" {
				if _, ok := arch.LayerTypeOf("lstm"); !ok {
					if err == nil || !strings.Contains(err.Error(), "node /lstm/LSTM (LSTM)") {
						t.Fatalf("import without an lstm layer type: %v", err)
					}
					return
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.FromFile(res.Weights, &res.Spec)
			if err != nil {
				t.Fatal(err)
			}
			in, err := npy.ReadFile(filepath.Join(dir, name+"_input.npy"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := npy.ReadFile(filepath.Join(dir, name+"_output.npy"))
			if err != nil {
				t.Fatal(err)
			}
			s := &data.Split{X: in.Data.([]float32), N: in.Shape[0], Features: in.Len() / in.Shape[0], Shape: in.Shape[1:], Y: make([]int32, in.Shape[0])}
			got, err := model.Logits(context.Background(), m, s, s.N)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range want.Data.([]float32) {
				if d := math.Abs(float64(got[i] - w)); d > 1e-5*max(1, math.Abs(float64(w))) {
					t.Errorf("logit %d: %g, PyTorch %g", i, got[i], w)
				}
			}
			t.Logf("layers: %v", layerSummary(res.Spec))
		})
	}
}

func layerSummary(s arch.Spec) []string {
	var out []string
	for _, l := range s.Layers {
		out = append(out, l.Name+":"+l.Type)
	}
	return out
}

// Every activation torch.onnx.export writes as an operator or an opset-13
// pattern (ReLU6 as Clip, SiLU as Sigmoid and Mul, GELU exact and tanh as
// their elementwise forms), LayerNormalization, and an embedding reading
// INT64 token ids, import to PyTorch's outputs with its names. (The
// exporter leaves an eval-mode Dropout out.)
func TestTorchLayerTypes(t *testing.T) {
	for _, c := range []struct {
		name  string
		types []string
	}{
		{"layers", []string{"linear", "relu6", "linear", "sigmoid", "linear", "tanh", "linear", "silu", "linear", "gelu", "linear", "gelu", "layernorm", "linear"}},
		{"tokens", []string{"embedding", "linear", "gelu", "flatten", "linear"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, m := importFixture(t, c.name)
			var types []string
			for _, l := range res.Spec.Layers {
				types = append(types, l.Type)
			}
			if !slices.Equal(types, c.types) {
				t.Errorf("layer types %v, want %v", types, c.types)
			}
			t.Logf("weight layers %v", m.LayerNames())
			in, err := npy.ReadFile(filepath.Join("testdata", c.name+"_input.npy"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := npy.ReadFile(filepath.Join("testdata", c.name+"_output.npy"))
			if err != nil {
				t.Fatal(err)
			}
			x, ok := in.Data.([]float32)
			if ids, isIDs := in.Data.([]int64); isIDs {
				x, ok = make([]float32, len(ids)), true
				for i, v := range ids {
					x[i] = float32(v)
				}
			}
			if !ok {
				t.Fatalf("input is %s", in.DType())
			}
			s := &data.Split{X: x, N: in.Shape[0], Features: in.Len() / in.Shape[0], Shape: in.Shape[1:], Y: make([]int32, in.Shape[0])}
			got, err := model.Logits(context.Background(), m, s, s.N)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range want.Data.([]float32) {
				if d := math.Abs(float64(got[i] - w)); d > 1e-5*max(1, math.Abs(float64(w))) {
					t.Errorf("logit %d: %g, PyTorch %g", i, got[i], w)
				}
			}
		})
	}
}
