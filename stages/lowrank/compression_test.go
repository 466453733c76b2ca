package lowrank

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
)

// TestPrunedLayerWarns checks that factoring a pruned layer warns that its zeros
// go, and leaves dense, unmasked factors of the pruned weight.
func TestPrunedLayerWarns(t *testing.T) {
	m := testkit.OracleModel(t)
	l := m.Layer("fc2")
	w := l.Weights[0]
	w.Mask = make([]float32, len(w.Data))
	for i := range w.Mask {
		w.Mask[i] = float32(i % 2)
	}
	l.Pruned = true
	m.ApplyMasks()
	pruned := l.DenseWeight()
	log, buf := capture()
	rep, err := factorLayer(l, rule{rank: 3}, log)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result != Factored || l.Pruned {
		t.Fatalf("%s, pruned %v: want factored and no longer pruned", rep.Result, l.Pruned)
	}
	for _, f := range l.Weights {
		if f.Mask != nil {
			t.Errorf("%s keeps a mask", f.Name)
		}
	}
	if !strings.Contains(buf.String(), `"level":"warn"`) || !strings.Contains(buf.String(), "zeros are not kept") {
		t.Errorf("no warning about the zeros: %s", buf.String())
	}
	d, _ := decompose(pruned, l.Units(), l.FanIn())
	if e := frobeniusError(pruned, l.Weights[1].Data, l.Weights[0].Data, l.Units(), 3, l.FanIn()); e > 1.01*d.optimalError(3) {
		t.Errorf("error %g against the pruned weight, optimal %g", e, d.optimalError(3))
	}
	if c := m.Compression()["fc2"]; c.Pruned || c.Rank != 3 {
		t.Errorf("checkpoint metadata says %+v", c)
	}
}

// TestRefactorIsOptimalForTheProduct factors a factored layer to a lower rank:
// the result is the best rank-k approximation of the present product.
func TestRefactorIsOptimalForTheProduct(t *testing.T) {
	m := randomModel(arch.Spec{Arch: "mlp", Inputs: 40, Hidden: []int{30}, Classes: 10}, 4)
	l := m.Layer("fc1")
	factorExactly(t, l, 12)
	product := l.DenseWeight()
	rep, err := factorLayer(l, rule{rank: 5}, nopLog)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result != Refactored || rep.RankBefore != 12 || rep.Rank != 5 || rep.ParamsBefore != 12*70 || rep.Params != 5*70 {
		t.Fatalf("report %+v", rep)
	}
	d, _ := decompose(product, l.Units(), l.FanIn())
	if e := frobeniusError(product, l.Weights[1].Data, l.Weights[0].Data, l.Units(), 5, l.FanIn()); e > 1.01*d.optimalError(5) {
		t.Errorf("error %g against the rank-12 product, optimal %g", e, d.optimalError(5))
	}
	if l.BiasName() != "fc1.1.bias" || l.Weights[0].Name != "fc1.0.weight" {
		t.Errorf("names %s, %s", l.Weights[0].Name, l.BiasName())
	}
}

// TestQuantizedLayerStaysQuantized factors a quantized layer: its dequantized
// weights are factored, both factors land on their own int8 grids, and the
// checkpoint stores them as I8 with scales that read back to the same model.
func TestQuantizedLayerStaysQuantized(t *testing.T) {
	spec := quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
	m := testkit.OracleModel(t)
	l := m.Layer("fc2")
	l.Quant = &spec
	m.Requantize()
	dequantized := l.DenseWeight()
	rep, err := factorLayer(l, rule{rank: 3}, nopLog)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result != Factored || l.Quant == nil || *l.Quant != spec {
		t.Fatalf("%s, quant %v: want factored and still %v", rep.Result, l.Quant, spec)
	}
	for _, w := range l.Weights {
		if w.QParams == nil || len(w.QParams.Scale) != w.Shape[0] {
			t.Fatalf("%s: want one scale per output channel, got %+v", w.Name, w.QParams)
		}
		snapped := make([]float32, len(w.Data))
		spec.FakeQuantize(w.Data, *w.QParams, snapped)
		if !slices.Equal(snapped, w.Data) {
			t.Errorf("%s is not on its quantization grid", w.Name)
		}
	}
	// Quantizing the factors costs some accuracy, but not much at int8.
	d, _ := decompose(dequantized, l.Units(), l.FanIn())
	optimal := d.optimalError(3) / norm(dequantized)
	if rep.ReconstructionError > optimal*1.05 || rep.ReconstructionError < optimal {
		t.Errorf("relative error %g, optimal %g", rep.ReconstructionError, optimal)
	}
	path := filepath.Join(t.TempDir(), "q.safetensors")
	if _, err := m.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fc2.0.weight", "fc2.1.weight"} {
		if tn, ok := f.Get(name); !ok || tn.DType != checkpoint.DTypeI8 {
			t.Errorf("%s: want I8", name)
		}
		if _, ok := f.Get(strings.TrimSuffix(name, ".weight") + ".weight_scale"); !ok {
			t.Errorf("%s has no scale", name)
		}
	}
	var comp map[string]model.LayerCompression
	if err := json.Unmarshal([]byte(f.Metadata["compression"]), &comp); err != nil || comp["fc2"].Rank != 3 || comp["fc2"].Quant == nil {
		t.Errorf("compression metadata %v (%v)", comp["fc2"], err)
	}
	back, err := model.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := logits(t, m, 4), logits(t, back, 4); !slices.Equal(a, b) {
		t.Errorf("logits differ after save and load: %v vs %v", a, b)
	}
}

// TestAllZeroWeight: a zero weight has no energy to share; the energy rule
// takes rank 1 and the factors are zero.
func TestAllZeroWeight(t *testing.T) {
	m := testkit.OracleModel(t)
	l := m.Layer("fc2")
	clear(l.Weights[0].Data)
	rep, err := factorLayer(l, rule{energy: 0.9}, nopLog)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result != Factored || rep.Rank != 1 || rep.ReconstructionError != 0 || rep.EnergyKept != 1 {
		t.Fatalf("report %+v", rep)
	}
	for _, w := range l.Weights {
		for _, x := range w.Data {
			if x != 0 {
				t.Fatalf("%s has a non-zero %g", w.Name, x)
			}
		}
	}
}
