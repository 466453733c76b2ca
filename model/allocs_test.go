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
		lora   string // "", or the frozen base of LoRA adapters (dropout 0.1) on every layer: float, nf4
	}{
		{"mlp adam", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, "", ""},
		{"mlp adam masked", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), true, "", ""},
		{"mlp sgd", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, OptimizerConfig{Name: "sgd", LR: 0.1, Momentum: 0.9}, false, "", ""},
		{"lenet5 adam", arch.Spec{Arch: "lenet5", Classes: 10}, DefaultOptimizer(), false, "", ""},
		{"mlp qat dynamic", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, "dynamic", ""},
		{"mlp qat static", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, "static", ""},
		{"lenet5 qat dynamic", arch.Spec{Arch: "lenet5", Classes: 10}, DefaultOptimizer(), false, "dynamic", ""},
		{"mlp lora", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, "", "float"},
		{"mlp qlora nf4", arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16}, Classes: 4}, DefaultOptimizer(), false, "", "nf4"},
		{"lenet5 qlora nf4", arch.Spec{Arch: "lenet5", Classes: 10}, DefaultOptimizer(), false, "", "nf4"},
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
			net, err := Build(m, NetOptions{Batch: 8, Mode: ModeTrain, Rand: rng})
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
