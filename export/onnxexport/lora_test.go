package onnxexport

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
)

// TestLoRAInOnnxruntime: a model with LoRA adapters (over a float, an NF4
// and an int8 base) exports with its adapters merged, so onnxruntime computes
// the adapted model's logits, not the base's; each merge is noted.
func TestLoRAInOnnxruntime(t *testing.T) {
	for _, base := range []string{"float", "nf4", "int8"} {
		t.Run(base, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(31, 32))
			m := model.MustNew(lenet5, rng)
			for _, name := range []string{"conv1", "fc1"} {
				l := m.Layer(name)
				l.Frozen = model.FrozenParams
				if err := l.AddAdapter(2, 4, false, 0, rng); err != nil {
					t.Fatal(err)
				}
				for i := range l.Adapter.B.Data { // B is zero until trained
					l.Adapter.B.Data[i] = float32(rng.NormFloat64()) * 0.3
				}
				switch base {
				case "nf4":
					if err := l.QuantizeNF4(64, true); err != nil {
						t.Fatal(err)
					}
				case "int8":
					if err := l.QuantizeFrozen(quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}); err != nil {
						t.Fatal(err)
					}
				}
			}
			m = saved(t, m)
			s := split(m.Spec, 40, 3)
			want, got, res := runExport(t, m, s, Options{}, ortest.Options{})
			ag := compare(want, got, m.Spec.Classes)
			t.Logf("max |diff| %.3g, largest logit %.3g", ag.max, ag.peak)
			// The merged weight rounds W + B A * scaling once where shrink
			// sums the base and the branch: float32 rounding, not more.
			if ag.max > 1e-4*max(ag.peak, 1) || ag.argmax != 1 {
				t.Errorf("onnxruntime differs from the LoRA model: max |diff| %.3g (largest logit %.3g), argmax agreement %.4f", ag.max, ag.peak, ag.argmax)
			}
			notes := strings.Join(res.Notes, "\n")
			for _, name := range []string{"conv1", "fc1"} {
				if !strings.Contains(notes, name+": LoRA adapter merged") {
					t.Errorf("no note of %s's merge in %q", name, notes)
				}
			}
			if !m.HasAdapters() {
				t.Error("Export merged the caller's model")
			}
		})
	}
}
