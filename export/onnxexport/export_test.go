package onnxexport

import (
	"github.com/shrink-ml/shrink/onnx"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
)

type keys = map[string]any

var (
	mlp    = arch.Spec{Arch: "mlp", Inputs: 64, Hidden: []int{48, 24}, Classes: 10}
	lenet5 = arch.Spec{Arch: "lenet5", Channels: []int{4, 8}, Hidden: []int{24, 16}, Classes: 10}
	resnet = arch.Spec{Arch: "resnet", Depth: 8, Width: 4, Input: arch.Shape{1, 12, 12}, Classes: 10}
	// branchy uses every other layer type: a concat of two convolutions,
	// padded average pooling, a batch norm over a linear layer's outputs.
	branchy = arch.Spec{Input: arch.Shape{2, 10, 10}, Classes: 6, Layers: []arch.LayerSpec{
		arch.NewLayer("stem", "conv2d", keys{"out": 6, "kernel": 3, "padding": 1}),
		arch.NewLayer("stem_bn", "batchnorm2d", nil),
		arch.NewLayer("", "relu", nil),
		arch.NewLayer("pool", "avgpool2d", keys{"kernel": 3, "stride": 2, "padding": 1}),
		arch.NewLayer("a", "conv2d", keys{"out": 4, "kernel": 1}, "pool"),
		arch.NewLayer("b", "conv2d", keys{"out": 5, "kernel": 3, "padding": 1, "dilation": 1, "bias": false}, "pool"),
		arch.NewLayer("cat", "concat", nil, "a", "b"),
		arch.NewLayer("", "relu", nil),
		arch.NewLayer("", "maxpool2d", keys{"kernel": 2, "padding": 1}),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc1", "linear", keys{"out": 16}),
		arch.NewLayer("bn", "batchnorm1d", nil),
		arch.NewLayer("", "relu", nil),
		arch.NewLayer("fc2", "linear", keys{"out": 6}),
	}}
	// sequence applies linear layers to every step of [T, F] inputs.
	sequence = arch.Spec{Input: arch.Shape{5, 6}, Classes: 4, Layers: []arch.LayerSpec{
		arch.NewLayer("p", "linear", keys{"out": 8}),
		arch.NewLayer("q", "linear", keys{"out": 3}, "p"),
		arch.NewLayer("r", "linear", keys{"out": 2, "bias": false}, "p"),
		arch.NewLayer("cat", "concat", nil, "q", "r"),
		arch.NewLayer("", "relu", nil),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc", "linear", keys{"out": 4}),
	}}
)

var (
	// pointwise has every activation, dropout and a layer norm.
	pointwise = arch.Spec{Input: arch.Shape{16}, Classes: 5, Layers: []arch.LayerSpec{
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
		arch.NewLayer("drop", "dropout", keys{"p": 0.3}),
		arch.NewLayer("ln", "layernorm", nil),
		arch.NewLayer("out", "linear", keys{"out": 5}),
	}}
	// lstm2 is the lstm preset with two stacked layers; seqnet an LSTM
	// without biases whose whole output sequence feeds linear layers.
	lstm2  = arch.Spec{Arch: "lstm", Hidden: []int{12}, NumLayers: 2, Input: arch.Shape{7, 5}, Classes: 4}
	seqnet = arch.Spec{Input: arch.Shape{6, 3}, Classes: 5, Layers: []arch.LayerSpec{
		arch.NewLayer("rnn", "lstm", keys{"hidden": 8, "bias": false}),
		arch.NewLayer("proj", "linear", keys{"out": 4}),
		arch.NewLayer("", "relu", nil),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc", "linear", keys{"out": 5}),
	}}
	// tokens embeds integer ids [T] and classifies the sequence.
	tokens = arch.Spec{Input: arch.Shape{6}, Classes: 4, Layers: []arch.LayerSpec{
		arch.NewLayer("emb", "embedding", keys{"num": 20, "dim": 8}),
		arch.NewLayer("proj", "linear", keys{"out": 8}),
		arch.NewLayer("ln", "layernorm", nil),
		arch.NewLayer("", "gelu", nil),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc", "linear", keys{"out": 4}),
	}}
)

// trainedBN gives every batch norm running statistics and an affine
// transform a trained network could have.
func trainedBN(m *model.Model, rng *rand.Rand) {
	for _, l := range m.Layers {
		for _, w := range append(l.Params, l.Buffers...) {
			switch l.Suffix(w.Name) {
			case "running_mean", "bias":
				if l.Type == "batchnorm1d" || l.Type == "batchnorm2d" {
					for i := range w.Data {
						w.Data[i] = float32(rng.NormFloat64() * 0.2)
					}
				}
			case "running_var", "weight":
				if l.Type == "batchnorm1d" || l.Type == "batchnorm2d" {
					for i := range w.Data {
						w.Data[i] = float32(0.5 + rng.Float64())
					}
				}
			}
		}
	}
}

// floatCase is a float model to export.
type floatCase struct {
	name string
	spec arch.Spec
	edit func(m *model.Model, rng *rand.Rand)
}

var floatCases = []floatCase{
	{"mlp", mlp, nil},
	{"mlp pruned", mlp, func(m *model.Model, rng *rand.Rand) { prune(m, rng, 0.9) }},
	{"mlp factored", mlp, func(m *model.Model, rng *rand.Rand) { factor(m, rng, "fc1", 8) }},
	{"mlp structured", arch.Spec{Arch: "mlp", Inputs: 64, Hidden: []int{12, 24}, Classes: 10}, nil},
	{"lenet5", lenet5, nil},
	{"lenet5 pruned, conv2 factored", lenet5, func(m *model.Model, rng *rand.Rand) {
		prune(m, rng, 0.7)
		factor(m, rng, "conv2", 3)
	}},
	{"resnet8", resnet, trainedBN},
	{"branchy", branchy, trainedBN},
	{"sequence", sequence, func(m *model.Model, rng *rand.Rand) { factor(m, rng, "p", 2) }},
	{"pointwise", pointwise, trainedLN},
	{"tokens", tokens, trainedLN},
	{"lstm2", lstm2, nil},
	{"lstm2 pruned", lstm2, func(m *model.Model, rng *rand.Rand) { prune(m, rng, 0.6) }},
	{"seqnet", seqnet, nil},
}

// trainedLN gives layer norms an affine transform a trained network could
// have.
func trainedLN(m *model.Model, rng *rand.Rand) {
	for _, l := range m.Layers {
		if l.Type == "layernorm" {
			for _, p := range l.Params {
				for i := range p.Data {
					p.Data[i] = float32(0.5 + rng.Float64())
				}
			}
		}
	}
}

// Float exports compute shrink's logits to float32 rounding: every value
// within 1e-5 of the largest logit's magnitude.
func TestFloatInOnnxruntime(t *testing.T) {
	for _, c := range floatCases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			m := model.MustNew(c.spec, rng)
			if c.edit != nil {
				c.edit(m, rng)
			}
			m = saved(t, m)
			s := split(m.Spec, 40, 3)
			want, got, _ := runExport(t, m, s, Options{}, ortest.Options{})
			ag := compare(want, got, m.Spec.Classes)
			t.Logf("max |diff| %.3g, largest logit %.3g", ag.max, ag.peak)
			if ag.max > 1e-5*max(ag.peak, 1) || ag.argmax != 1 {
				t.Errorf("onnxruntime differs from shrink: max |diff| %.3g (largest logit %.3g), argmax agreement %.4f", ag.max, ag.peak, ag.argmax)
			}
		})
	}
}

// quantCase is a quantized model to export: the kinds the shipped recipes
// make, and the grids their keys allow.
type quantCase struct {
	name string
	spec arch.Spec
	q    qspec
	// edit runs before quantization (pruning, factoring) and after it
	// (overrides).
	before, after func(t *testing.T, m *model.Model, rng *rand.Rand)
}

var (
	w4sym  = quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
	w4tens = quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerTensor}
	w2asym = quant.Spec{Bits: 2, Scheme: quant.Asymmetric, Granularity: quant.PerChannel}
	w6tens = quant.Spec{Bits: 6, Scheme: quant.Symmetric, Granularity: quant.PerTensor}
	a8sym  = quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerTensor}
	a4asym = quant.Spec{Bits: 4, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}
	a6sym  = quant.Spec{Bits: 6, Scheme: quant.Symmetric, Granularity: quant.PerTensor}
	// int8tens and act8rr are torch.ao's quantize_dynamic on fbgemm.
	int8tens = quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerTensor}
	act8rr   = quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor, ReduceRange: true}
)

// override requantizes one layer's weights with another spec, as a
// recipe's overrides do.
func override(name string, spec quant.Spec) func(*testing.T, *model.Model, *rand.Rand) {
	return func(_ *testing.T, m *model.Model, _ *rand.Rand) {
		l := m.Layer(name)
		s := spec
		l.Quant = &s
		for _, w := range l.Weights {
			w.QParams = nil
		}
		l.Requantize()
	}
}

func pruneAll(s float64) func(*testing.T, *model.Model, *rand.Rand) {
	return func(_ *testing.T, m *model.Model, rng *rand.Rand) { prune(m, rng, s) }
}

var quantCases = []quantCase{
	// quantize-int8, sweep-select: dynamic, int8 symmetric per-channel.
	{name: "mlp dynamic int8", spec: mlp, q: qspec{int8sym, act8, "dynamic"}},
	// distill-compressed, sweep-select: pruned, dynamic 4, 3 and 2 bits.
	{name: "mlp pruned dynamic 4-bit", spec: mlp, q: qspec{w4sym, act8, "dynamic"}, before: pruneAll(0.95)},
	{name: "mlp dynamic 2-bit asymmetric", spec: mlp, q: qspec{w2asym, act8, "dynamic"}},
	// quantize-static: static int8 with calibrated inputs.
	{name: "mlp static int8", spec: mlp, q: qspec{int8sym, act8, "static"}},
	{name: "mlp static int8 asymmetric per tensor", spec: mlp, q: qspec{int8asym, act8, "static"}},
	// quantize-mixed, qat-int4: static, per-layer bits.
	{name: "mlp static mixed", spec: mlp, q: qspec{int8sym, act8, "static"}, after: override("fc1", w2asym)},
	// deep-compression-lenet300: pruned, 4-bit per tensor, fc3 6-bit.
	{name: "mlp pruned 4-bit per tensor", spec: mlp, q: qspec{w4tens, act8, "static"}, before: pruneAll(0.9), after: override("fc3", w6tens)},
	// lowrank then quantize.
	{name: "mlp factored dynamic int8", spec: mlp, q: qspec{int8sym, act8, "dynamic"},
		before: func(_ *testing.T, m *model.Model, rng *rand.Rand) { factor(m, rng, "fc1", 6) }},
	{name: "mlp factored static int8", spec: mlp, q: qspec{int8sym, act8, "static"},
		before: func(_ *testing.T, m *model.Model, rng *rand.Rand) { factor(m, rng, "fc2", 5) }},
	// Input grids beyond onnxruntime's integer operators.
	{name: "mlp dynamic symmetric inputs", spec: mlp, q: qspec{int8sym, a8sym, "dynamic"}},
	{name: "mlp dynamic 4-bit inputs", spec: mlp, q: qspec{w4sym, a4asym, "dynamic"}},
	{name: "mlp static 6-bit symmetric inputs", spec: mlp, q: qspec{int8sym, a6sym, "static"}},
	{name: "mlp static 4-bit inputs", spec: mlp, q: qspec{w4sym, a4asym, "static"}},
	// deep-compression-lenet5: convolutions, pruned, 4-bit per tensor, 6-bit ends.
	{name: "lenet5 pruned 4-bit", spec: lenet5, q: qspec{w4tens, act8, "static"}, before: pruneAll(0.7),
		after: func(t *testing.T, m *model.Model, rng *rand.Rand) {
			override("conv1", w6tens)(t, m, rng)
			override("fc3", w6tens)(t, m, rng)
		}},
	{name: "lenet5 static int8", spec: lenet5, q: qspec{int8sym, act8, "static"}},
	{name: "lenet5 dynamic int8", spec: lenet5, q: qspec{int8sym, act8, "dynamic"}},
	{name: "lenet5 dynamic asymmetric per-channel", spec: lenet5, q: qspec{quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerChannel}, act8, "dynamic"}},
	{name: "lenet5 factored conv dynamic int8", spec: lenet5, q: qspec{int8sym, act8, "dynamic"},
		before: func(_ *testing.T, m *model.Model, rng *rand.Rand) { factor(m, rng, "conv2", 3) }},
	// Batch norms folded into quantized convolutions.
	{name: "resnet8 static int8", spec: resnet, q: qspec{int8sym, act8, "static"},
		before: func(_ *testing.T, m *model.Model, rng *rand.Rand) { trainedBN(m, rng) }},
	{name: "resnet8 dynamic int8", spec: resnet, q: qspec{int8sym, act8, "dynamic"},
		before: func(_ *testing.T, m *model.Model, rng *rand.Rand) { trainedBN(m, rng) }},
	{name: "branchy static 4-bit", spec: branchy, q: qspec{w4sym, act8, "static"},
		before: func(_ *testing.T, m *model.Model, rng *rand.Rand) { trainedBN(m, rng) }},
	{name: "sequence dynamic int8", spec: sequence, q: qspec{int8sym, act8, "dynamic"}},
	{name: "sequence static int8", spec: sequence, q: qspec{int8asym, act8, "static"}},
	{name: "pointwise static int8", spec: pointwise, q: qspec{int8sym, act8, "static"}},
	{name: "tokens dynamic int8", spec: tokens, q: qspec{int8sym, act8, "dynamic"}},
	// lstm-mnist: torch's quantize_dynamic (int8 symmetric per tensor,
	// inputs reduce_range), as DynamicQuantizeLSTM.
	{name: "lstm2 dynamic int8 reduce_range", spec: lstm2, q: qspec{int8tens, act8rr, "dynamic"}},
	{name: "lstm2 dynamic int8 per channel", spec: lstm2, q: qspec{int8sym, act8, "dynamic"}},
	{name: "seqnet dynamic int8 asymmetric", spec: seqnet, q: qspec{int8asym, act8, "dynamic"}},
	{name: "seqnet dynamic 4-bit inputs", spec: seqnet, q: qspec{w4sym, a4asym, "dynamic"}},
	{name: "mlp dynamic int8 reduce_range", spec: mlp, q: qspec{int8tens, act8rr, "dynamic"}},
	{name: "lstm2 pruned dynamic 4-bit", spec: lstm2, q: qspec{w4tens, act8rr, "dynamic"}, before: pruneAll(0.5)},
}

// Quantized exports agree with shrink's quantized model: the same class
// for at least 99.5% of the samples, a median |logit difference| of at
// most 2e-3, with onnxruntime's QDQ fusions (integer kernels) and without.
func TestQuantizedInOnnxruntime(t *testing.T) {
	for _, c := range quantCases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 6))
			m := model.MustNew(c.spec, rng)
			if c.before != nil {
				c.before(t, m, rng)
			}
			quantize(t, m, c.q, split(m.Spec, 64, 7))
			if c.after != nil {
				c.after(t, m, rng)
			}
			m = saved(t, m)
			s := split(m.Spec, 200, 8)
			for _, level := range []string{"all", "disabled"} {
				want, got, res := runExport(t, m, s, Options{}, ortest.Options{Opt: level})
				ag := compare(want, got, m.Spec.Classes)
				t.Logf("%s: argmax %.4f, median |diff| %.2g, max %.2g (largest logit %.3g)", level, ag.argmax, ag.median, ag.max, ag.peak)
				if ag.argmax < 0.995 || ag.median > 2e-3 {
					t.Errorf("optimization %s: argmax agreement %.4f (want >= 0.995), median |diff| %.3g (want <= 2e-3)", level, ag.argmax, ag.median)
				}
				if level == "all" {
					for _, n := range res.Notes {
						t.Log("note: " + n)
					}
				}
			}
		})
	}
}

// With Int4, weights and inputs of 4 bits and fewer are INT4 tensors
// (opset 21) that onnxruntime runs to shrink's logits, dynamic layers
// included (through DequantizeLinear: the integer operators read INT8), and
// the notes say so.
func TestInt4InOnnxruntime(t *testing.T) {
	for _, mode := range []string{"static", "dynamic"} {
		t.Run(mode, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 6))
			m := model.MustNew(mlp, rng)
			inputs := a4asym
			if mode == "dynamic" {
				inputs = act8
			}
			quantize(t, m, qspec{w4sym, inputs, mode}, split(m.Spec, 64, 7))
			override("fc3", w2asym)(t, m, rng)
			m = saved(t, m)
			s := split(m.Spec, 200, 8)
			for _, level := range []string{"all", "disabled"} {
				want, got, res := runExport(t, m, s, Options{Int4: true}, ortest.Options{Opt: level})
				if v := res.Model.Opset(""); v != OpsetInt4 {
					t.Fatalf("opset %d, want %d", v, OpsetInt4)
				}
				int4 := 0
				for _, x := range res.Model.Graph.Initializers {
					if x.Type == onnx.TypeInt4 {
						int4++
					}
				}
				want4 := 6 // each layer's weight and zero point
				if mode == "static" {
					want4 += 3 // and its input's zero point
				}
				if int4 != want4 {
					t.Errorf("%d INT4 initializers, want %d", int4, want4)
				}
				ag := compare(want, got, m.Spec.Classes)
				t.Logf("%s: argmax %.4f, median |diff| %.2g, max %.2g", level, ag.argmax, ag.median, ag.max)
				if ag.argmax < 0.995 || ag.median > 2e-3 {
					t.Errorf("optimization %s: argmax agreement %.4f, median |diff| %.3g", level, ag.argmax, ag.median)
				}
				if !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "fc1: 4-bit weights stored as INT4") }) {
					t.Errorf("no note on fc1's INT4 weights: %q", res.Notes)
				}
			}
		})
	}
}

// With FloatBias, onnxruntime has no bias to round: at its full
// optimization a quantized ResNet's logits are shrink's to float rounding in
// almost every output (the integer kernels it still runs are exact), where
// the default form lets it round the biases of the QLinearConv layers
// within its budget (TestBiasRule).
func TestFloatBiasInOnnxruntime(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m := model.MustNew(resnet, rng)
	trainedBN(m, rng)
	quantize(t, m, qspec{int8sym, act8, "static"}, split(m.Spec, 64, 7))
	m = saved(t, m)
	s := split(m.Spec, 200, 8)
	want, got, res := runExport(t, m, s, Options{FloatBias: true}, ortest.Options{})
	ag := compare(want, got, m.Spec.Classes)
	t.Logf("argmax %.4f, median |diff| %.2g, max %.2g (largest logit %.3g)", ag.argmax, ag.median, ag.max, ag.peak)
	if ag.argmax != 1 || ag.median > 1e-6 {
		t.Errorf("argmax agreement %.4f, median |diff| %.3g: want exact to float rounding", ag.argmax, ag.median)
	}
	for _, n := range res.Model.Graph.Nodes {
		if (n.OpType == "Conv" || n.OpType == "Gemm") && len(n.Inputs) > 2 {
			t.Errorf("node %s has a bias input", n.Name)
		}
	}
}

// An LSTM exports as the operator onnxruntime runs it with: LSTM in float,
// DynamicQuantizeLSTM where its input grid is the layer's (8-bit
// asymmetric, 0..255), a Scan computing shrink's rule where it is not
// (reduce_range) unless ORTDynamic asks for onnxruntime's kernel anyway,
// whose logits then differ by the two grids' rounding (and say so).
func TestLSTMForms(t *testing.T) {
	for _, c := range []struct {
		name  string
		q     *qspec
		opt   Options
		op    string // the operator the layer becomes
		exact bool   // shrink's logits to float rounding
	}{
		{"float", nil, Options{}, "LSTM", true},
		{"dynamic int8", &qspec{int8sym, act8, "dynamic"}, Options{}, "DynamicQuantizeLSTM", true},
		{"reduce_range", &qspec{int8tens, act8rr, "dynamic"}, Options{}, "Scan", true},
		{"reduce_range ORTDynamic", &qspec{int8tens, act8rr, "dynamic"}, Options{ORTDynamic: true}, "DynamicQuantizeLSTM", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 6))
			m := model.MustNew(lstm2, rng)
			if c.q != nil {
				quantize(t, m, *c.q, split(m.Spec, 64, 7))
			}
			m = saved(t, m)
			want, got, res := runExport(t, m, split(m.Spec, 200, 8), c.opt, ortest.Options{})
			counts := map[string]int{}
			for _, n := range res.Model.Graph.Nodes {
				counts[n.OpType]++
				if n.OpType == "DynamicQuantizeLSTM" && n.Domain != MSDomain {
					t.Errorf("%s in domain %q", n.Name, n.Domain)
				}
			}
			if counts[c.op] != 2 {
				t.Errorf("%d %s nodes for 2 stacked layers: %v", counts[c.op], c.op, counts)
			}
			ag := compare(want, got, m.Spec.Classes)
			t.Logf("argmax %.4f, median |diff| %.2g, max %.2g (largest logit %.3g); notes %q", ag.argmax, ag.median, ag.max, ag.peak, res.Notes)
			if c.exact && ag.max > 1e-5*max(ag.peak, 1) {
				t.Errorf("max |diff| %.3g: want shrink's logits to float rounding", ag.max)
			}
			if !c.exact && !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "reduce_range 0..127") }) {
				t.Errorf("no note on the grids: %q", res.Notes)
			}
		})
	}
}
