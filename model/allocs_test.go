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
		// Residual blocks: a block's input feeds its first convolution and the
		// shortcut's sum, so gorgonia.Grad adds two gradients for it.
		{"resnet8 sgd", resnetSpec(8), OptimizerConfig{Name: "sgd", LR: 0.1, Momentum: 0.9, WeightDecay: 5e-4}, false, ""},
		{"resnet14 adam masked", resnetSpec(14), DefaultOptimizer(), true, ""},
		{"resnet8 qat dynamic", resnetSpec(8), DefaultOptimizer(), false, "dynamic"},
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
			if tc.qat != "" {
				for _, l := range m.WeightLayers() {
					l.Quant = &quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
					l.Input = &ActQuant{Mode: tc.qat, Spec: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}}
				}
			}
			net, err := Build(m, NetOptions{Batch: 8, Mode: ModeTrain})
			if err != nil {
				t.Fatal(err)
			}
			opt, err := NewOptimizer(tc.opt, net.Params())
			if err != nil {
				t.Fatal(err)
			}
			for i := range net.X {
				net.X[i] = float32(rng.NormFloat64())
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
