package model

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/quant"
)

// staticQuantize gives every weight layer int8 per-channel weights and
// static 8-bit inputs over [-lo, hi] (signed codes, or 0..127 with
// reduce_range).
func staticQuantize(m *Model, lo, hi float32, reduce bool) {
	for _, l := range m.WeightLayers() {
		l.Quant = &quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
		spec := quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor, ReduceRange: reduce}
		s, zp := spec.ParamsOf(lo, hi)
		l.Input = &ActQuant{Mode: "static", Spec: spec, RangeMin: lo, RangeMax: hi, Params: quant.Params{Scale: []float32{s}, ZeroPoint: []int32{zp}}}
	}
	m.Requantize()
}

// With NetOptions.StaticInt8, statically quantized linear and conv layers
// run on integer kernels and give the float evaluation's logits up to its
// rounding; without it, nothing changes.
func TestStaticInt8AgreesWithFloat(t *testing.T) {
	for _, c := range []struct {
		name   string
		spec   arch.Spec
		reduce bool
		ops    int
	}{
		{"mlp", arch.Spec{Arch: "mlp", Inputs: 30, Hidden: arch.Widths{20, 12}, Classes: 5}, false, 3},
		{"mlp-reduce", arch.Spec{Arch: "mlp", Inputs: 30, Hidden: arch.Widths{20}, Classes: 5}, true, 2},
		{"lenet5", arch.Spec{Arch: "lenet5", Classes: 10}, false, 5},
		{"resnet8", arch.Spec{Arch: "resnet", Depth: 8, Width: 4, Input: arch.Shape{3, 10, 10}, Classes: 3}, false, 10}, // 7 convs, 2 downsamples, fc
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			m := MustNew(c.spec, rng)
			staticQuantize(m, -3, 5, c.reduce)
			const batch = 6
			x := make([]float32, batch*shapeSize(m.Spec.InputShape()))
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			float, fops := evalInt8(t, m, batch, x, false)
			integer, iops := evalInt8(t, m, batch, x, true)
			if fops != 0 || iops != c.ops {
				t.Errorf("%d integer ops without StaticInt8 and %d with, want 0 and %d", fops, iops, c.ops)
			}
			if d := maxRelDiff(integer, float); d > 1e-5 {
				t.Errorf("integer and float evaluations differ by %g of the largest logit", d)
			}
			if slices.Equal(integer, float) {
				t.Log("bit-identical")
			}
		})
	}
}

// evalInt8 evaluates m on x, with or without NetOptions.StaticInt8, and
// counts the integer (".int8") ops in the graph it built.
func evalInt8(t *testing.T, m *Model, batch int, x []float32, staticInt8 bool) ([]float32, int) {
	t.Helper()
	net, err := Build(m, NetOptions{Batch: batch, Mode: ModeEval, StaticInt8: staticInt8})
	if err != nil {
		t.Fatal(err)
	}
	copy(net.X, x)
	if err := net.Run(); err != nil {
		t.Fatal(err)
	}
	ops := 0
	for _, node := range net.g.AllNodes() {
		if node.Op() != nil && strings.HasSuffix(node.Op().String(), ".int8") {
			ops++
		}
	}
	return slices.Clone(net.Logits()), ops
}

func shapeSize(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// With NetOptions.StaticInt8, dynamically quantized linear layers whose
// inputs are not reduce_range (recipes/quantize-int8.yaml's form) run on
// integer kernels and give the float evaluation's logits up to its
// rounding; without it they compute in float, and reduce_range layers run
// on integer kernels either way.
func TestFullRangeDynamicInt8AgreesWithFloat(t *testing.T) {
	for _, reduce := range []bool{false, true} {
		t.Run(map[bool]string{false: "full", true: "reduce"}[reduce], func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			m := MustNew(arch.Spec{Arch: "mlp", Inputs: 30, Hidden: arch.Widths{20, 12}, Classes: 5}, rng)
			for _, l := range m.WeightLayers() {
				l.Quant = &quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
				l.Input = &ActQuant{Mode: "dynamic", Spec: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor, ReduceRange: reduce}}
			}
			m.Requantize()
			const batch = 7
			x := make([]float32, batch*30)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			float, fops := evalInt8(t, m, batch, x, false)
			integer, iops := evalInt8(t, m, batch, x, true)
			wantF := 0
			if reduce {
				wantF = 3
			}
			if fops != wantF || iops != 3 {
				t.Errorf("%d integer ops without StaticInt8 and %d with, want %d and 3", fops, iops, wantF)
			}
			if reduce && !slices.Equal(integer, float) {
				t.Errorf("reduce_range layers changed with StaticInt8")
			}
			if d := maxRelDiff(integer, float); d > 1e-5 {
				t.Errorf("integer and float evaluations differ by %g of the largest logit", d)
			}
		})
	}
}

// An integer linear layer applies the ReLU after it in its output pass
// only when nothing else reads the layer's output: here layer a feeds both
// the ReLU and a residual add, so the ReLU stays a layer of its own, while
// b's ReLU is fused. Either way the logits are the float evaluation's up
// to its rounding.
func TestFusedReLUOnlyWhenAlone(t *testing.T) {
	var raw map[string]any
	src := `{input: [6], classes: 3, layers: [{name: a, type: linear, out: 8}, {name: ra, type: relu},
		{name: b, type: linear, out: 8}, {name: rb, type: relu}, {name: s, type: add, from: [a, rb]}, {name: o, type: linear, out: 3}]}`
	if err := yaml.Unmarshal([]byte(src), &raw); err != nil {
		t.Fatal(err)
	}
	spec := arch.Default()
	if errs := config.Decode(raw, spec); len(errs) > 0 {
		t.Fatal(errs)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	m := MustNew(*spec, rng)
	staticQuantize(m, -3, 5, false)
	const batch = 5
	x := make([]float32, batch*6)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	run := func(static bool) ([]float32, map[string]bool) {
		t.Helper()
		net, err := Build(m, NetOptions{Batch: batch, Mode: ModeEval, StaticInt8: static})
		if err != nil {
			t.Fatal(err)
		}
		copy(net.X, x)
		if err := net.Run(); err != nil {
			t.Fatal(err)
		}
		ops := map[string]bool{}
		for _, node := range net.g.AllNodes() {
			if node.Op() != nil {
				ops[node.Op().String()] = true
			}
		}
		return slices.Clone(net.Logits()), ops
	}
	float, fops := run(false)
	integer, iops := run(true)
	if !fops["ra"] || !fops["rb"] {
		t.Fatalf("the float net lacks its ReLUs: %v", fops)
	}
	if !iops["ra"] || iops["rb"] {
		t.Errorf("integer net: ReLU ra present %v (want true: a is read twice), rb present %v (want false: fused)", iops["ra"], iops["rb"])
	}
	if d := maxRelDiff(integer, float); d > 1e-5 {
		t.Errorf("integer and float evaluations differ by %g of the largest logit", d)
	}
}
