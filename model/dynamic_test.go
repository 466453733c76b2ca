package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/quant"
)

// torchDynamic quantizes every layer as torch.ao's quantize_dynamic does
// (with other weight bits or granularity when given).
func torchDynamic(m *Model, weights ...quant.Spec) {
	w := quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerTensor}
	if len(weights) > 0 {
		w = weights[0]
	}
	for _, l := range m.WeightLayers() {
		l.Quant = &w
		l.Input = &ActQuant{Mode: "dynamic", Spec: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor, ReduceRange: true}}
	}
	m.Requantize()
}

// A dynamically quantized LSTM and linear layer evaluate on integer kernels,
// and computing the same quantization in float (the training graph: fake
// quantized inputs: the input sequence and every step's hidden state fake
// quantized inside the LSTM's op) gives the same logits up to float rounding,
// far closer than the float model. Also with 4-bit per-channel weights.
func TestDynamicLSTMIntegerAndFloatPathsAgree(t *testing.T) {
	for _, w := range []quant.Spec{
		{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerTensor},
		{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerChannel},
	} {
		t.Run(w.String(), func(t *testing.T) { integerAndFloatAgree(t, w) })
	}
}

func integerAndFloatAgree(t *testing.T, w quant.Spec) {
	spec := arch.Spec{Arch: "lstm", Input: arch.Shape{9, 6}, Hidden: arch.Widths{24}, NumLayers: 2, Classes: 5}
	rng := rand.New(rand.NewPCG(7, 8))
	m := MustNew(spec, rng)
	const n = 64
	x := make([]float32, n*9*6)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	logits := func(m *Model, mode Mode) ([]float32, *Net) {
		t.Helper()
		net, err := Build(m, NetOptions{Batch: n, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		copy(net.X, x)
		if net.Labels != nil {
			clear(net.Labels)
		}
		if err := net.Run(); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(net.Logits()), net
	}
	float, _ := logits(m, ModeEval)
	q := m.Clone()
	torchDynamic(q, w)
	integer, net := logits(q, ModeEval)
	ops := 0
	for _, node := range net.g.AllNodes() {
		if node.Op() != nil && strings.HasSuffix(node.Op().String(), ".int8") {
			ops++
		}
	}
	if ops != 3 { // two LSTM layers and fc
		t.Fatalf("%d integer ops in the eval graph, want 3", ops)
	}
	// Training re-observes the weights (their largest value, clipped to 127
	// steps, gives another scale), so the weights enter as the floats their
	// integers stand for and only the inputs are fake-quantized.
	onGrid := q.Clone()
	for _, l := range onGrid.WeightLayers() {
		l.Quant = nil
	}
	fake, _ := logits(onGrid, ModeTrain)
	t.Logf("int vs fake %g, int vs float %g", maxRelDiff(integer, fake), maxRelDiff(integer, float))
	if d := maxRelDiff(integer, fake); d > 1e-5 {
		t.Errorf("integer kernels and fake quantization differ by %g of the largest logit", d)
	}
	if d := maxRelDiff(integer, float); d < 1e-3 {
		t.Errorf("the quantized logits are within %g of the float model's: nothing was quantized?", d)
	}
}

func maxRelDiff(a, b []float32) float64 {
	var scale, worst float64
	for i := range b {
		scale = max(scale, math.Abs(float64(b[i])))
		worst = max(worst, math.Abs(float64(a[i])-float64(b[i])))
	}
	return worst / scale
}
