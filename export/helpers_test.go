package export

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
)

var mlp = arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16, 12}, Classes: 5}

// prune zeroes a share of every weight, as the prune stage does.
func prune(m *model.Model, rng *rand.Rand, sparsity float64) {
	for _, l := range m.WeightLayers() {
		for _, w := range l.Weights {
			w.Mask = make([]float32, len(w.Data))
			for i := range w.Data {
				if rng.Float64() >= sparsity {
					w.Mask[i] = 1
				} else {
					w.Data[i] = 0
				}
			}
		}
		l.Pruned = true
	}
}

// quantize rounds every weight of the named layers to the grid of spec, as the
// quantize stage does.
func quantize(m *model.Model, spec quant.Spec, layers ...string) {
	for _, l := range m.WeightLayers() {
		if len(layers) > 0 && !slices.Contains(layers, l.Name) {
			continue
		}
		s := spec
		l.Quant = &s
		for _, w := range l.Weights {
			p := spec.ParamsFor(w.Data, w.Shape)
			spec.FakeQuantize(w.Data, p, w.Data)
			w.QParams = &p
		}
	}
}

// factor replaces a linear layer by two factors of rank k, as lowrank does.
func factor(m *model.Model, rng *rand.Rand, name string, k int) {
	l := m.Layer(name)
	a, b := make([]float32, k*l.FanIn()), make([]float32, l.Units()*k)
	for _, w := range [][]float32{a, b} {
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.2)
		}
	}
	l.SetFactors(a, b)
}

// testModels are the models every round trip is checked on.
func testModels() map[string]*model.Model {
	rng := rand.New(rand.NewPCG(11, 12))
	sym4 := quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
	asym8 := quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}
	asym3 := quant.Spec{Bits: 3, Scheme: quant.Asymmetric, Granularity: quant.PerChannel}
	out := map[string]*model.Model{}
	out["plain"] = model.MustNew(mlp, rng)

	out["pruned"] = model.MustNew(mlp, rng)
	prune(out["pruned"], rng, 0.8)

	out["quantized 4-bit"] = model.MustNew(mlp, rng)
	quantize(out["quantized 4-bit"], sym4)

	out["8-bit asymmetric per tensor"] = model.MustNew(mlp, rng)
	quantize(out["8-bit asymmetric per tensor"], asym8)

	out["factored"] = model.MustNew(mlp, rng)
	factor(out["factored"], rng, "fc1", 3)

	m := model.MustNew(mlp, rng)
	factor(m, rng, "fc2", 4)
	prune(m, rng, 0.9)
	quantize(m, asym3, "fc1", "fc2")
	quantize(m, asym8, "fc3")
	m.Layer("fc2").Input = &model.ActQuant{Mode: "static", Spec: asym8,
		Params: quant.Params{Scale: []float32{0.05}, ZeroPoint: []int32{3}}}
	out["pruned, factored, 3-bit, static input"] = m

	conv := model.MustNew(arch.Spec{Arch: "lenet5", Channels: []int{3, 4}, Hidden: []int{10, 8}, Classes: 5}, rng)
	prune(conv, rng, 0.7)
	quantize(conv, quant.Spec{Bits: 5, Scheme: quant.Symmetric, Granularity: quant.PerChannel})
	out["lenet5 pruned 5-bit"] = conv
	return out
}

// sameModel reports the first difference between two models, comparing
// floats by their bits.
func sameModel(a, b *model.Model) error {
	if a.Spec.JSON() != b.Spec.JSON() {
		return fmt.Errorf("arch %s vs %s", a.Spec.JSON(), b.Spec.JSON())
	}
	if len(a.Layers) != len(b.Layers) {
		return fmt.Errorf("%d vs %d layers", len(a.Layers), len(b.Layers))
	}
	for i, la := range a.WeightLayers() {
		lb := b.WeightLayers()[i]
		if la.Name != lb.Name || la.Rank != lb.Rank || la.Pruned != lb.Pruned {
			return fmt.Errorf("layer %s: name/rank/pruned %s/%d/%v vs %s/%d/%v", la.Name, la.Name, la.Rank, la.Pruned, lb.Name, lb.Rank, lb.Pruned)
		}
		if fmt.Sprint(la.Quant) != fmt.Sprint(lb.Quant) {
			return fmt.Errorf("layer %s: quant %v vs %v", la.Name, la.Quant, lb.Quant)
		}
		if (la.Input == nil) != (lb.Input == nil) {
			return fmt.Errorf("layer %s: input quantization %v vs %v", la.Name, la.Input, lb.Input)
		}
		if la.Input != nil {
			if la.Input.Mode != lb.Input.Mode || la.Input.Spec != lb.Input.Spec || !sameBits(la.Input.Params.Scale, lb.Input.Params.Scale) || !slices.Equal(la.Input.Params.ZeroPoint, lb.Input.Params.ZeroPoint) {
				return fmt.Errorf("layer %s: input quantization %+v vs %+v", la.Name, *la.Input, *lb.Input)
			}
		}
		if !sameBits(la.Bias().Data, lb.Bias().Data) {
			return fmt.Errorf("layer %s: bias differs", la.Name)
		}
		if len(la.Weights) != len(lb.Weights) {
			return fmt.Errorf("layer %s: %d vs %d weights", la.Name, len(la.Weights), len(lb.Weights))
		}
		for j, wa := range la.Weights {
			wb := lb.Weights[j]
			switch {
			case wa.Name != wb.Name || !slices.Equal(wa.Shape, wb.Shape):
				return fmt.Errorf("weight %s %v vs %s %v", wa.Name, wa.Shape, wb.Name, wb.Shape)
			case !sameBits(wa.Data, wb.Data):
				return fmt.Errorf("weight %s: values differ", wa.Name)
			case !sameBits(wa.Mask, wb.Mask):
				return fmt.Errorf("weight %s: masks differ", wa.Name)
			case (wa.QParams == nil) != (wb.QParams == nil):
				return fmt.Errorf("weight %s: quantization parameters %v vs %v", wa.Name, wa.QParams, wb.QParams)
			case wa.QParams != nil && (!sameBits(wa.QParams.Scale, wb.QParams.Scale) || !slices.Equal(wa.QParams.ZeroPoint, wb.QParams.ZeroPoint)):
				return fmt.Errorf("weight %s: scales or zero points differ", wa.Name)
			}
		}
	}
	return nil
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// testSplit is a few random samples for the model's input shape.
func testSplit(spec arch.Spec, n int) *data.Split {
	rng := rand.New(rand.NewPCG(13, 14))
	features := 1
	for _, d := range spec.InputShape() {
		features *= d
	}
	s := &data.Split{X: make([]float32, n*features), Y: make([]int32, n), N: n, Features: features}
	for i := range s.X {
		s.X[i] = float32(rng.NormFloat64())
	}
	for i := range s.Y {
		s.Y[i] = int32(rng.IntN(spec.Classes))
	}
	return s
}

func mustT(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustArch(t *testing.T, js string) *arch.Spec {
	t.Helper()
	s, err := arch.Parse(js)
	mustT(t, err)
	return &s
}
