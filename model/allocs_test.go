package model

import (
	"math/rand/v2"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/quant"
)

// TestTrainStepDoesNotAllocate guards the training loop's steady state: after
// the first step has sized every buffer, a forward, backward and Adam (or SGD)
// step allocates nothing, whatever the model family, masking or fake
// quantization (QAT's observers reuse their scratch).
func TestTrainStepDoesNotAllocate(t *testing.T) {
	lstmSpec := arch.Spec{Arch: "lstm", Input: arch.Shape{7, 5}, Hidden: arch.Widths{16}, NumLayers: 2, Classes: 4}
	for _, tc := range []struct {
		name   string
		spec   arch.Spec
		opt    OptimizerConfig
		masked bool
		qat    string // "", or the input quantization mode of quantization-aware training
	}{
		{"mlp adam", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, ""},
		{"mlp adam masked", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), true, ""},
		{"mlp sgd", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, OptimizerConfig{Name: "sgd", LR: 0.1, Momentum: 0.9}, false, ""},
		{"lenet5 adam", arch.Spec{Arch: "lenet5", Classes: 10}, DefaultOptimizer(), false, ""},
		{"mlp qat dynamic", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, "dynamic"},
		{"mlp qat static", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, "static"},
		{"lenet5 qat dynamic", arch.Spec{Arch: "lenet5", Classes: 10}, DefaultOptimizer(), false, "dynamic"},
		{"lstm adam", lstmSpec, DefaultOptimizer(), false, ""},
		{"lstm adam masked", lstmSpec, DefaultOptimizer(), true, ""},
		{"lstm dynamic int8 torch", lstmSpec, DefaultOptimizer(), false, "torch"},
		{"activations norms dropout adam", activationsSpec, DefaultOptimizer(), false, ""},
		{"activations norms dropout sgd masked", activationsSpec, OptimizerConfig{Name: "sgd", LR: 0.1, Momentum: 0.9}, true, ""},
		{"embedding adam", embeddingSpec, DefaultOptimizer(), false, ""},
		{"embedding adam masked", embeddingSpec, DefaultOptimizer(), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			m := MustNew(tc.spec, rng)
			if tc.masked {
				for _, l := range m.WeightLayers() {
					l.Pruned = true
					for _, w := range l.Weights {
						w.Mask = make([]float32, len(w.Data))
						for i := range w.Mask {
							w.Mask[i] = float32(i % 2)
						}
					}
				}
			}
			switch tc.qat {
			case "":
			case "torch": // the weights and inputs of quantize_dynamic, trained on (a finetune after quantize)
				for _, l := range m.WeightLayers() {
					l.Quant = &quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerTensor}
					l.Input = &ActQuant{Mode: "dynamic", Spec: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor, ReduceRange: true}}
				}
			default:
				for _, l := range m.WeightLayers() {
					l.Quant = &quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
					l.Input = &ActQuant{Mode: tc.qat, Spec: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}}
				}
			}
			net, err := Build(m, NetOptions{Batch: 8, Mode: ModeTrain, Rand: rand.New(rand.NewPCG(5, 6))})
			if err != nil {
				t.Fatal(err)
			}
			opt, err := NewOptimizer(tc.opt, net.Params())
			if err != nil {
				t.Fatal(err)
			}
			for i := range net.X {
				net.X[i] = float32(rng.NormFloat64())
				if tc.spec.Layers != nil && tc.spec.Layers[0].Type == "embedding" {
					net.X[i] = float32(rng.IntN(20)) // token ids
				}
			}
			for i := range net.Labels {
				net.Labels[i] = float32(i % tc.spec.Classes)
			}
			step := func() {
				if err := net.Run(); err != nil {
					t.Fatal(err)
				}
				opt.Step(net.Params())
			}
			step() // sizes the buffers
			if n := testing.AllocsPerRun(20, step); n != 0 {
				t.Errorf("a training step allocates %v times", n)
			}
		})
	}
}

// activationsSpec chains every activation, layer norm on vectors and on
// sequences, and dropout (which draws a mask each step).
var activationsSpec = arch.Spec{Input: arch.Shape{3, 8}, Classes: 4, Layers: []arch.LayerSpec{
	arch.NewLayer("proj", "linear", map[string]any{"out": 6}),
	arch.NewLayer("ln1", "layernorm", nil),
	arch.NewLayer("", "gelu", nil),
	arch.NewLayer("", "flatten", nil),
	arch.NewLayer("fc1", "linear", map[string]any{"out": 16}),
	arch.NewLayer("", "sigmoid", nil),
	arch.NewLayer("", "tanh", nil),
	arch.NewLayer("", "silu", nil),
	arch.NewLayer("", "relu6", nil),
	arch.NewLayer("", "gelu", map[string]any{"approximate": "tanh"}),
	arch.NewLayer("ln2", "layernorm", nil),
	arch.NewLayer("", "dropout", map[string]any{"p": 0.3}),
	arch.NewLayer("fc2", "linear", map[string]any{"out": 4}),
}}

// embeddingSpec looks up 6 token ids of a 20-word vocabulary.
var embeddingSpec = arch.Spec{Input: arch.Shape{6}, Classes: 4, Layers: []arch.LayerSpec{
	arch.NewLayer("emb", "embedding", map[string]any{"num": 20, "dim": 5}),
	arch.NewLayer("", "dropout", nil),
	arch.NewLayer("", "flatten", nil),
	arch.NewLayer("fc", "linear", map[string]any{"out": 4}),
}}
