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
	if raceEnabled {
		t.Skip("the race detector allocates; run without -race")
	}
	lstmSpec := arch.Spec{Arch: "lstm", Input: arch.Shape{7, 5}, Hidden: arch.Widths{16}, NumLayers: 2, Classes: 4}
	for _, tc := range []struct {
		name   string
		spec   arch.Spec
		opt    OptimizerConfig
		masked bool
		qat    string // "", or the input quantization mode of quantization-aware training
		lora   string // "", or the frozen base of LoRA adapters (dropout 0.1) on every layer: float, nf4
	}{
		{"mlp adam", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, "", ""},
		{"mlp adam masked", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), true, "", ""},
		{"mlp sgd", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, OptimizerConfig{Name: "sgd", LR: 0.1, Momentum: 0.9}, false, "", ""},
		{"lenet5 adam", arch.Spec{Arch: "lenet5", Classes: 10}, DefaultOptimizer(), false, "", ""},
		{"mlp qat dynamic", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, "dynamic", ""},
		{"mlp qat static", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, "static", ""},
		{"lenet5 qat dynamic", arch.Spec{Arch: "lenet5", Classes: 10}, DefaultOptimizer(), false, "dynamic", ""},
		{"lstm adam", lstmSpec, DefaultOptimizer(), false, "", ""},
		{"lstm adam masked", lstmSpec, DefaultOptimizer(), true, "", ""},
		{"lstm dynamic int8 torch", lstmSpec, DefaultOptimizer(), false, "torch", ""},
		{"activations norms dropout adam", activationsSpec, DefaultOptimizer(), false, "", ""},
		{"activations norms dropout sgd masked", activationsSpec, OptimizerConfig{Name: "sgd", LR: 0.1, Momentum: 0.9}, true, "", ""},
		{"embedding adam", embeddingSpec, DefaultOptimizer(), false, "", ""},
		{"embedding adam masked", embeddingSpec, DefaultOptimizer(), true, "", ""},
		{"mlp lora", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, "", "float"},
		{"mlp qlora nf4", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, "", "nf4"},
		{"lenet5 qlora nf4", arch.Spec{Arch: "lenet5", Classes: 10}, DefaultOptimizer(), false, "", "nf4"},
		// Residual blocks: a block's input feeds its first convolution and the
		// shortcut's sum, so gorgonia.Grad adds two gradients for it.
		{"resnet8 sgd", resnetSpec(8), OptimizerConfig{Name: "sgd", LR: 0.1, Momentum: 0.9, WeightDecay: 5e-4}, false, "", ""},
		{"resnet14 adam masked", resnetSpec(14), DefaultOptimizer(), true, "", ""},
		{"resnet8 qat dynamic", resnetSpec(8), DefaultOptimizer(), false, "dynamic", ""},
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
			if tc.lora != "" {
				for _, l := range m.WeightLayers() {
					l.Frozen = FrozenParams
					if err := l.AddAdapter(2, 4, false, 0.1, rng); err != nil {
						t.Fatal(err)
					}
					if tc.lora == "nf4" {
						if err := l.QuantizeNF4(64, true); err != nil {
							t.Fatal(err)
						}
					}
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

// resnetSpec is a small CIFAR-style ResNet on 1x12x12 images.
func resnetSpec(depth int) arch.Spec {
	return arch.Spec{Arch: "resnet", Depth: depth, Width: 4, Classes: 4, Input: []int{1, 12, 12}}
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
