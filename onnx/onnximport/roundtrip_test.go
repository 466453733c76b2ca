package onnximport_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/export/onnxexport"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/onnx/onnximport"
)

type keys = map[string]any

// roundTrips are float networks of every layer type the exporter writes.
var roundTrips = map[string]arch.Spec{
	"mlp":    {Arch: "mlp", Inputs: 30, Hidden: []int{20, 12}, Classes: 5},
	"lenet5": {Arch: "lenet5", Channels: []int{3, 5}, Hidden: []int{12, 8}, Classes: 4},
	"resnet": {Arch: "resnet", Depth: 8, Width: 4, Input: arch.Shape{2, 10, 10}, Classes: 3},
	"branchy": {Input: arch.Shape{2, 9, 9}, Classes: 6, Layers: []arch.LayerSpec{
		arch.NewLayer("stem", "conv2d", keys{"out": 6, "kernel": 3, "padding": 1, "stride": 2}),
		arch.NewLayer("stem_bn", "batchnorm2d", nil),
		arch.NewLayer("", "relu", nil),
		arch.NewLayer("pool", "avgpool2d", keys{"kernel": 3, "stride": 1, "padding": 1}),
		arch.NewLayer("a", "conv2d", keys{"out": 4, "kernel": []any{1, 3}, "padding": []any{0, 1}}, "pool"),
		arch.NewLayer("b", "conv2d", keys{"out": 6, "kernel": 3, "padding": 2, "dilation": 2, "groups": 2, "bias": false}, "pool"),
		arch.NewLayer("cat", "concat", nil, "a", "b"),
		arch.NewLayer("", "maxpool2d", keys{"kernel": 2, "padding": 1}),
		arch.NewLayer("", "adaptive_avgpool2d", nil),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc1", "linear", keys{"out": 16}),
		arch.NewLayer("bn", "batchnorm1d", nil),
		arch.NewLayer("", "relu", nil),
		arch.NewLayer("fc2", "linear", keys{"out": 6}),
	}},
	"sequence": {Input: arch.Shape{5, 6}, Classes: 4, Layers: []arch.LayerSpec{
		arch.NewLayer("p", "linear", keys{"out": 8}),
		arch.NewLayer("q", "linear", keys{"out": 3}, "p"),
		arch.NewLayer("r", "linear", keys{"out": 2, "bias": false}, "p"),
		arch.NewLayer("cat", "concat", nil, "q", "r"),
		arch.NewLayer("", "relu", nil),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc", "linear", keys{"out": 4}),
	}},
}

// randomize gives batch norms statistics a trained network could have.
func randomize(m *model.Model, rng *rand.Rand) {
	for _, l := range m.Layers {
		if l.Type != "batchnorm1d" && l.Type != "batchnorm2d" {
			continue
		}
		for _, w := range append(l.Params, l.Buffers...) {
			for i := range w.Data {
				w.Data[i] = float32(0.5 + rng.Float64())
			}
		}
	}
}

func samples(spec arch.Spec, n int) *data.Split {
	rng := rand.New(rand.NewPCG(3, 4))
	s := &data.Split{X: make([]float32, n*spec.Features()), Y: make([]int32, n), N: n, Features: spec.Features(), Shape: spec.InputShape()}
	for i := range s.X {
		s.X[i] = float32(rng.NormFloat64())
		if spec.Layers != nil && spec.Layers[0].Type == "embedding" {
			s.X[i] = float32(rng.IntN(20)) // token ids
		}
	}
	return s
}

// A float model exported to ONNX imports back to the same network: every
// layer with its name and state_dict tensors, and bit-identical logits.
func TestExportImportRoundTrip(t *testing.T) {
	for name, spec := range roundTrips {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			m := model.MustNew(spec, rng)
			randomize(m, rng)
			res, err := onnxexport.Export(m, onnxexport.Options{})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "m.onnx")
			if err := res.Model.WriteFile(path); err != nil {
				t.Fatal(err)
			}
			imp, err := onnximport.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			back, err := model.FromFile(imp.Weights, &imp.Spec)
			if err != nil {
				t.Fatal(err)
			}
			// The same weight layers under the same names, the same types.
			if got, want := back.LayerNames(), m.LayerNames(); !equal(got, want) {
				t.Errorf("weight layers %v, want %v", got, want)
			}
			var gotTypes, wantTypes []string
			for _, l := range back.Layers {
				gotTypes = append(gotTypes, l.Type)
			}
			for _, l := range m.Layers {
				wantTypes = append(wantTypes, l.Type)
			}
			if !equal(gotTypes, wantTypes) {
				t.Errorf("layer types %v, want %v", gotTypes, wantTypes)
			}
			if got, want := back.Spec.JSON(), m.Spec.JSON(); name == "pointwise" && got != want {
				t.Errorf("arch %s, want %s", got, want)
			}
			s := samples(m.Spec, 17)
			want, err := model.Logits(context.Background(), m, s, 8)
			if err != nil {
				t.Fatal(err)
			}
			got, err := model.Logits(context.Background(), back, s, 8)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
					t.Fatalf("logit %d: %g imported, %g exported", i, got[i], want[i])
				}
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func init() {
	roundTrips["pointwise"] = arch.Spec{Input: arch.Shape{16}, Classes: 5, Layers: []arch.LayerSpec{
		arch.NewLayer("a", "linear", keys{"out": 12}),
		arch.NewLayer("", "relu6", nil),
		arch.NewLayer("b", "linear", keys{"out": 12}),
		arch.NewLayer("", "sigmoid", nil),
		arch.NewLayer("c", "linear", keys{"out": 12}),
		arch.NewLayer("", "tanh", nil),
		arch.NewLayer("d", "linear", keys{"out": 12}),
		arch.NewLayer("", "silu", nil),
		arch.NewLayer("e", "linear", keys{"out": 12}),
		arch.NewLayer("", "gelu", nil),
		arch.NewLayer("f", "linear", keys{"out": 12}),
		arch.NewLayer("", "gelu", keys{"approximate": "tanh"}),
		arch.NewLayer("", "dropout", keys{"p": 0.3}),
		arch.NewLayer("ln", "layernorm", keys{"eps": 1e-4}),
		arch.NewLayer("out", "linear", keys{"out": 5}),
	}}
	roundTrips["lstm"] = arch.Spec{Arch: "lstm", Hidden: []int{10}, NumLayers: 2, Input: arch.Shape{6, 5}, Classes: 3}
	roundTrips["seqnet"] = arch.Spec{Input: arch.Shape{6, 3}, Classes: 5, Layers: []arch.LayerSpec{
		arch.NewLayer("rnn", "lstm", keys{"hidden": 8, "bias": false}),
		arch.NewLayer("proj", "linear", keys{"out": 4}),
		arch.NewLayer("", "relu", nil),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc", "linear", keys{"out": 5}),
	}}
	roundTrips["tokens"] = arch.Spec{Input: arch.Shape{6}, Classes: 4, Layers: []arch.LayerSpec{
		arch.NewLayer("emb", "embedding", keys{"num": 20, "dim": 8}),
		arch.NewLayer("proj", "linear", keys{"out": 8}),
		arch.NewLayer("", "gelu", nil),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc", "linear", keys{"out": 4}),
	}}
}
