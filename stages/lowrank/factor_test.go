package lowrank

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/model"
)

// factorExactly factors a layer at rank k without the dense fallback, as the
// exactness tests need full ranks.
func factorExactly(t *testing.T, l *model.Layer, k int) {
	t.Helper()
	d, err := decompose(l.DenseWeight(), l.Units(), l.FanIn())
	if err != nil {
		t.Fatal(err)
	}
	first, second := d.factors(k)
	setFactors(l, first, second)
}

// TestDenseFallback checks the rule k(m+n) >= mn keeps a layer as it is, at
// the boundary too, and that an info line says so.
func TestDenseFallback(t *testing.T) {
	for _, tc := range []struct {
		name         string
		out, in      int
		presentRank  int // factor the layer at this rank first (0: dense)
		k            int
		want         string
		wantRank     int
		wantInfoLine string
	}{
		{"smaller as factors", 10, 100, 0, 9, Factored, 9, ""},             // 990 < 1000
		{"one rank too many", 10, 100, 0, 10, KeptDense, 0, "stays dense"}, // 1100 >= 1000
		{"equal counts stay dense", 4, 4, 0, 2, KeptDense, 0, "stays dense"},
		{"lenet fc3 at rank 64", 10, 100, 0, 64, KeptDense, 0, "stays dense"},
		{"already at a lower rank", 10, 100, 3, 5, KeptFactored, 3, "already factored"},
		{"already at that rank", 10, 100, 3, 3, KeptFactored, 3, "already factored"},
		{"refactored lower", 10, 100, 5, 2, Refactored, 2, ""},
		{"factored, rank too high to pay", 10, 100, 5, 10, KeptUnchanged, 5, "stays factored at rank 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := randomModel(arch.Spec{Arch: "mlp", Inputs: tc.in, Hidden: []int{}, Classes: max(tc.out, 2)}, 1)
			l := m.WeightLayers()[0]
			if l.Units() != tc.out {
				t.Fatalf("layer has %d outputs, want %d", l.Units(), tc.out)
			}
			if tc.presentRank > 0 {
				factorExactly(t, l, tc.presentRank)
			}
			before := weightCount(l)
			log, buf := capture()
			rep, err := factorLayer(l, rule{rank: tc.k}, log)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Result != tc.want || l.Rank != tc.wantRank || rep.Rank != tc.wantRank {
				t.Fatalf("%s at rank %d (report %d), want %s at rank %d", rep.Result, l.Rank, rep.Rank, tc.want, tc.wantRank)
			}
			if rep.ParamsBefore != before || rep.Params != weightCount(l) {
				t.Errorf("params %d -> %d, report says %d -> %d", before, weightCount(l), rep.ParamsBefore, rep.Params)
			}
			if tc.wantInfoLine == "" {
				return
			}
			var line struct{ Level, Message string }
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("want one log line, got %q", buf.String())
			}
			if line.Level != "info" || !strings.Contains(line.Message, tc.wantInfoLine) {
				t.Errorf("log %s %q, want info containing %q", line.Level, line.Message, tc.wantInfoLine)
			}
		})
	}
}

// TestFullRankKeepsOutputs checks that factors at full rank compute what the
// dense layer did, convs included (k-channel conv then 1x1 conv), and that a
// low rank changes the outputs (the factored graph is really the one run).
func TestFullRankKeepsOutputs(t *testing.T) {
	lenet := arch.Spec{Arch: "lenet5", Classes: 10}
	mlp := arch.Spec{Arch: "mlp", Inputs: 20, Hidden: []int{16, 12}, Classes: 5}
	for _, tc := range []struct {
		spec  arch.Spec
		layer string
		full  int
		first []int // NAME.0.weight's shape at full rank
	}{
		{lenet, "conv1", 6, []int{6, 1, 5, 5}},
		{lenet, "conv2", 16, []int{16, 6, 5, 5}},
		{lenet, "fc1", 120, []int{120, 256}},
		{mlp, "fc1", 16, []int{16, 20}},
		{mlp, "fc3", 5, []int{5, 12}},
	} {
		t.Run(tc.spec.Arch+"/"+tc.layer, func(t *testing.T) {
			m := randomModel(tc.spec, 2)
			want := logits(t, m, 3)
			l := m.Layer(tc.layer)
			factorExactly(t, l, tc.full)
			if !slices.Equal(l.Weights[0].Shape, tc.first) {
				t.Fatalf("NAME.0.weight shape %v, want %v", l.Weights[0].Shape, tc.first)
			}
			second := []int{l.Units(), tc.full}
			if l.Type == "conv2d" {
				second = append(second, 1, 1)
			}
			if !slices.Equal(l.Weights[1].Shape, second) {
				t.Fatalf("NAME.1.weight shape %v, want %v", l.Weights[1].Shape, second)
			}
			got := logits(t, m, 3)
			if diff, scale := maxAbsDiff(want, got); diff > 1e-5*scale {
				t.Errorf("full-rank factors change the logits by %g (largest logit %g)", diff, scale)
			}
			low := randomModel(tc.spec, 2)
			factorExactly(t, low.Layer(tc.layer), 1)
			if diff, scale := maxAbsDiff(want, logits(t, low, 3)); diff < 1e-3*scale {
				t.Errorf("rank 1 leaves the logits unchanged (diff %g): is the factored graph used?", diff)
			}
		})
	}
}

// TestSaveLoadSameLogits writes factored models and reads them back: the
// tensors are named and shaped as the spec says, and the logits are identical.
func TestSaveLoadSameLogits(t *testing.T) {
	for _, tc := range []struct {
		spec  arch.Spec
		ranks map[string]int
	}{
		{oracleSpec, map[string]int{"fc1": 3, "fc2": 3}},
		{arch.Spec{Arch: "lenet5", Classes: 10}, map[string]int{"conv2": 4, "fc1": 10}},
	} {
		t.Run(tc.spec.Arch, func(t *testing.T) {
			m := randomModel(tc.spec, 3)
			cfg := &Config{Ranks: tc.ranks}
			layers, rules, err := cfg.plan(m)
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range layers {
				if _, err := factorLayer(l, rules[i], nopLog); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(t.TempDir(), "model.safetensors")
			if _, err := m.Save(path, nil); err != nil {
				t.Fatal(err)
			}
			f, err := checkpoint.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for name, k := range tc.ranks {
				l := m.Layer(name)
				for _, want := range []struct {
					tensor string
					shape  []int
				}{
					{name + ".0.weight", l.Weights[0].Shape},
					{name + ".1.weight", l.Weights[1].Shape},
					{name + ".1.bias", []int{l.Units()}},
				} {
					tn, ok := f.Get(want.tensor)
					if !ok || !slices.Equal(tn.Shape, want.shape) || tn.DType != checkpoint.DTypeF32 {
						t.Errorf("%s: missing or not F32 %v", want.tensor, want.shape)
					}
				}
				if l.Rank != k || l.Weights[0].Shape[0] != k {
					t.Errorf("%s: rank %d, NAME.0.weight %v, want rank %d", name, l.Rank, l.Weights[0].Shape, k)
				}
				for _, gone := range []string{name + ".weight", name + ".bias"} {
					if _, ok := f.Get(gone); ok {
						t.Errorf("%s is still stored", gone)
					}
				}
			}
			back, err := model.Load(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for name, k := range tc.ranks {
				if r := back.Layer(name).Rank; r != k {
					t.Errorf("%s read back at rank %d, want %d", name, r, k)
				}
			}
			if a, b := logits(t, m, 4), logits(t, back, 4); !slices.Equal(a, b) {
				t.Errorf("logits differ after save and load: %v vs %v", a, b)
			}
		})
	}
}
