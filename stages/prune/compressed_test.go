package prune

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
)

// TestPruneQuantizedLayer prunes an int8 layer: it stays quantized with the same
// scales, the survivors keep their integers, the pruned ones store 0, and the
// checkpoint reloads with the zeros masked.
func TestPruneQuantizedLayer(t *testing.T) {
	for _, scheme := range []quant.Scheme{quant.Symmetric, quant.Asymmetric} {
		t.Run(string(scheme), func(t *testing.T) {
			m := mlp(20, []int{16}, 5)
			l := m.WeightLayers()[0]
			l.Quant = &quant.Spec{Bits: 8, Scheme: scheme, Granularity: quant.PerChannel}
			m.Requantize()
			before := slices.Clone(l.Weights[0].Data)
			scales := slices.Clone(l.Weights[0].QParams.Scale)

			res, err := run(t, newContext(t, m, nil), map[string]any{"method": "l1_unstructured", "amount": 0.5, "layers": []any{"fc1"}})
			if err != nil {
				t.Fatal(err)
			}
			pl := res.Model.WeightLayers()[0]
			w := pl.Weights[0]
			if pl.Quant == nil || !slices.Equal(w.QParams.Scale, scales) {
				t.Fatal("the layer lost its quantization or its scales")
			}
			for i, x := range w.Data {
				if w.Mask[i] == 1 && x != before[i] {
					t.Fatalf("survivor %d moved from %g to %g", i, before[i], x)
				}
			}
			if got := len(zeros(w.Mask)); got != 160 {
				t.Errorf("%d pruned, want 160", got)
			}
			path := filepath.Join(t.TempDir(), "q.safetensors")
			if _, err := res.Model.Save(path, nil); err != nil {
				t.Fatal(err)
			}
			f, err := checkpoint.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if tt, _ := f.Get("fc1.weight"); tt.DType != checkpoint.DTypeI8 {
				t.Fatalf("fc1.weight is stored as %s, want I8", tt.DType)
			}
			back, err := model.Load(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			bw := back.WeightLayers()[0].Weights[0]
			if !back.WeightLayers()[0].Pruned || back.WeightLayers()[0].Quant == nil {
				t.Fatal("reloaded layer is not pruned and quantized")
			}
			if !slices.Equal(bw.Data, w.Data) {
				t.Error("values changed through the checkpoint")
			}
			for i := range w.Mask {
				if w.Mask[i] == 0 && bw.Mask[i] != 0 {
					t.Fatalf("pruned entry %d is not masked after reloading", i)
				}
			}
		})
	}
}

// TestPruneFactoredLayer prunes a low-rank layer: each factor is pruned as a
// weight of its own, and the layer stays factored through the checkpoint.
func TestPruneFactoredLayer(t *testing.T) {
	m := mlp(20, []int{16}, 5)
	l := m.WeightLayers()[0]
	w := l.Weights[0]
	l.SetFactors(slices.Clone(w.Data[:60]), slices.Clone(w.Data[60:108]))
	res, err := run(t, newContext(t, m, nil), map[string]any{"method": "l1_unstructured", "amount": 0.5, "layers": []any{"fc1"}})
	if err != nil {
		t.Fatal(err)
	}
	pruned := res.Metrics["pruned"].(map[string]int)
	if pruned["fc1.0.weight"] != 30 || pruned["fc1.1.weight"] != 24 {
		t.Errorf("pruned %v, want 30 of fc1.0.weight and 24 of fc1.1.weight", pruned)
	}
	path := filepath.Join(t.TempDir(), "f.safetensors")
	if _, err := res.Model.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	back, err := model.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	bl := back.WeightLayers()[0]
	if bl.Rank != 3 || !bl.Pruned || len(zeros(bl.Weights[0].Mask)) != 30 || len(zeros(bl.Weights[1].Mask)) != 24 {
		t.Errorf("reloaded: rank %d, pruned %v, masks %d and %d zeros", bl.Rank, bl.Pruned, len(zeros(bl.Weights[0].Mask)), len(zeros(bl.Weights[1].Mask)))
	}
}
