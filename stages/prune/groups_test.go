package prune

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/arch/deps"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
)

// randomized is a model of the spec with batch norms that are not the
// identity (random running statistics and affine), so a wrong slice of them
// shows in the logits.
func randomized(t *testing.T, spec arch.Spec, seed uint64) *model.Model {
	t.Helper()
	m := model.MustNew(spec, rand.New(rand.NewPCG(seed, 1)))
	rng := rand.New(rand.NewPCG(seed, 2))
	for _, l := range m.Layers {
		if !strings.HasPrefix(l.Type, "batchnorm") {
			continue
		}
		for _, w := range append(slices.Clone(l.Params), l.Buffers...) {
			for i := range w.Data {
				switch {
				case strings.HasSuffix(w.Name, "running_var"):
					w.Data[i] = float32(0.5 + rng.Float64())
				case strings.HasSuffix(w.Name, "weight"):
					w.Data[i] = float32(0.5 + rng.Float64())
				default:
					w.Data[i] = float32(rng.NormFloat64() * 0.3)
				}
			}
		}
	}
	return m
}

// zeroChannels silences channels where they are made: the rows and bias of
// the layers making them and their batch norm's weight and bias, so they are
// 0 wherever they go. The layers reading them are left as they are: a pruned
// model that removed their columns must compute the same.
func zeroChannels(m *model.Model, r deps.Removal) {
	for g, idx := range r {
		for _, i := range idx {
			for _, s := range g.Channels[i].Slices {
				if s.Role == deps.In || s.Tensor == "running_mean" || s.Tensor == "running_var" {
					continue
				}
				w, axis := weightOf(m, s)
				for k := range entries(w, axis, s.Start, s.End) {
					w.Data[k] = 0
				}
			}
		}
	}
}

// TestPhysicalEqualsZeroed is the check of the dependency groups on numbers:
// for each small graph, removing some channels of every prunable group gives
// a smaller model that computes what the dense model computes with those
// channels zeroed (to float32 rounding), and that reloads with its new shapes.
func TestPhysicalEqualsZeroed(t *testing.T) {
	graphs := append(testkit.Graphs(), testkit.Graph{Name: "resnet8", Spec: arch.Spec{Arch: arch.ResNet, Depth: 8, Width: 4, Input: arch.Shape{1, 10, 10}, Classes: 3}})
	for gi, tg := range graphs {
		t.Run(tg.Name, func(t *testing.T) {
			dense := randomized(t, tg.Spec, uint64(gi+10))
			d := deps.Analyze(dense.Graph)
			rng := rand.New(rand.NewPCG(uint64(gi), 3))
			r := deps.Removal{}
			var cands []*candidate
			for _, g := range d.Groups {
				if g.Blocked != "" {
					continue
				}
				cands = append(cands, &candidate{g: g})
				// About half the channels, never all.
				for i := range g.Channels {
					if rng.IntN(2) == 0 && len(r[g]) < len(g.Channels)-1 {
						r[g] = append(r[g], i)
					}
				}
			}
			ref := dense.Clone()
			zeroChannels(ref, r)
			want := logits(t, ref, 8)

			// Prune those channels as group_norm does, then remove them.
			c := &Config{Method: GroupNorm, Physical: true}
			small := dense.Clone()
			for g, idx := range r {
				for _, i := range idx {
					c.cutChannel(small, g.Channels[i])
				}
			}
			if _, err := removeDead(small, d, cands); err != nil {
				t.Fatal(err)
			}
			got := logits(t, small, 8)
			if diff, scale := testkit.MaxDiff(got, want), testkit.MaxDiff(want, make([]float32, len(want))); diff > 1e-5*max(scale, 1) {
				t.Errorf("logits differ by %g from the dense model's with the channels zeroed (logits up to %g)", diff, scale)
			}
			if small.Graph.MACs() >= dense.Graph.MACs() {
				t.Errorf("MACs %d, dense %d: nothing got smaller", small.Graph.MACs(), dense.Graph.MACs())
			}
			// The narrowed architecture gives every tensor its new shape
			// (SetSpec checks), and the file reloads with it.
			path := filepath.Join(t.TempDir(), "small.safetensors")
			if _, err := small.Save(path, nil); err != nil {
				t.Fatal(err)
			}
			back, err := model.Load(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := testkit.MaxDiff(logits(t, back, 8), got); d != 0 {
				t.Errorf("the reloaded model's logits differ by %g", d)
			}
			for _, l := range back.WeightLayers() {
				if l.Pruned {
					t.Errorf("%s is still marked pruned: its removed rows took its masks' zeros", l.Name)
				}
			}
		})
	}
}

// TestGroupNormStage runs group_norm through the stage on a ResNet: masks
// alone give the same logits as the physical removal (group_norm masks every
// slice, so nothing is left to fold), the classifier keeps its 3 units, each
// residual stage stays one width across its blocks, and a MACs target is met.
func TestGroupNormStage(t *testing.T) {
	spec := arch.Spec{Arch: arch.ResNet, Depth: 14, Width: 4, Input: arch.Shape{1, 10, 10}, Classes: 3}
	start := randomized(t, spec, 5)
	masked, err := run(t, newContext(t, start, nil), map[string]any{"method": "group_norm", "amount": 0.5})
	if err != nil {
		t.Fatal(err)
	}
	physical, err := run(t, newContext(t, start, nil), map[string]any{"method": "group_norm", "amount": 0.5, "physical": true})
	if err != nil {
		t.Fatal(err)
	}
	want, got := logits(t, masked.Model, 8), logits(t, physical.Model, 8)
	if d, scale := testkit.MaxDiff(got, want), testkit.MaxDiff(want, make([]float32, len(want))); d > 1e-5*max(scale, 1) {
		t.Errorf("physical removal changed the logits by %g (up to %g)", d, scale)
	}
	g := physical.Model.Graph
	for _, stage := range []struct{ layers []string }{
		{[]string{"conv1", "layer1.0.conv2", "layer1.1.conv2"}},
		{[]string{"layer2.0.conv2", "layer2.0.downsample.0", "layer2.1.conv2"}},
	} {
		w := g.Node(stage.layers[0]).Out[0]
		for _, n := range stage.layers {
			if g.Node(n).Out[0] != w {
				t.Errorf("%s has %d channels, %s %d: a residual stage must keep one width", n, g.Node(n).Out[0], stage.layers[0], w)
			}
		}
	}
	if w := g.Node("conv1").Out[0]; w != 2 {
		t.Errorf("conv1 has %d channels, want 2 of 4", w)
	}
	if g.Output().Out[0] != 3 {
		t.Errorf("the classifier has %d outputs", g.Output().Out[0])
	}
	if physical.Model.Spec.Arch != "" || len(physical.Model.Spec.Layers) == 0 {
		t.Errorf("a narrowed resnet must be an explicit layer list, got %s", physical.Model.Spec.JSON())
	}
	if m := masked.Metrics["macs_if_removed"].(int64); m != g.MACs() {
		t.Errorf("the masked model reports %d MACs if removed, the removal has %d", m, g.MACs())
	}

	for _, measure := range []string{"macs", "params"} {
		t.Run("target "+measure, func(t *testing.T) {
			res, err := run(t, newContext(t, start, nil), map[string]any{"method": "group_norm", "target": map[string]any{measure: 0.5}, "physical": true, "ignore": []any{"conv1"}})
			if err != nil {
				t.Fatal(err)
			}
			before, after := start.Graph.MACs(), res.Model.Graph.MACs()
			if measure == "params" {
				before, after = start.Graph.Params(), res.Model.Graph.Params()
			}
			if ratio := float64(after) / float64(before); ratio > 0.5 || ratio < 0.4 {
				t.Errorf("kept %.3f of the %s, want just under 0.5", ratio, measure)
			}
			if w := res.Model.Graph.Node("layer1.0.conv2").Out[0]; w != 4 {
				t.Errorf("the stage conv1 shares was pruned to %d channels despite ignore", w)
			}
			if res.Metrics["macs_after"].(int64) != res.Model.Graph.MACs() {
				t.Errorf("metrics macs_after %v, model %d", res.Metrics["macs_after"], res.Model.Graph.MACs())
			}
		})
	}
}

// TestGroupErrors checks what groupwise pruning refuses.
func TestGroupErrors(t *testing.T) {
	resnet := randomized(t, arch.Spec{Arch: arch.ResNet, Depth: 8, Width: 4, Input: arch.Shape{1, 8, 8}, Classes: 3}, 1)
	tests := []struct {
		name string
		raw  map[string]any
		want string
	}{
		{"classifier", map[string]any{"layers": []any{"fc"}}, "layer fc is the output layer"},
		{"ignored partner", map[string]any{"layers": []any{"layer1.0.conv2"}, "ignore": []any{"conv1"}}, "layer layer1.0.conv2 shares its channels with conv1, which ignore protects"},
		{"different amounts in one group", map[string]any{"layers": []any{"conv1", "layer1.0.conv2"}, "amounts": map[string]any{"conv1": 0.5, "layer1.0.conv2": 0.25}},
			"layers conv1 and layer1.0.conv2 share their channels"},
		{"unreachable target", map[string]any{"amount": nil, "target": map[string]any{"macs": 0.01}}, "target macs 0.01 cannot be reached"},
		// amount: 1.0 is refused while decoding (config_test.go); a layer's own
		// amount reaches the run.
		{"every channel", map[string]any{"amounts": map[string]any{"layer1.0.conv1": 1.0}}, "layer layer1.0.conv1: every one of its 4 units"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := map[string]any{"method": "group_norm", "amount": 0.5, "physical": true}
			for k, v := range tt.raw {
				if v == nil {
					delete(raw, k)
				} else {
					raw[k] = v
				}
			}
			_, err := run(t, newContext(t, resnet, nil), raw)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestLnStructuredResidual: ln_structured with physical prunes a residual
// stage as one group, scored by the listed layer's rows.
func TestLnStructuredResidual(t *testing.T) {
	start := randomized(t, arch.Spec{Arch: arch.ResNet, Depth: 8, Width: 4, Input: arch.Shape{1, 8, 8}, Classes: 3}, 2)
	res, err := run(t, newContext(t, start, nil), map[string]any{"method": "ln_structured", "amount": 1, "n": 1, "physical": true, "layers": []any{"layer1.0.conv2"}})
	if err != nil {
		t.Fatal(err)
	}
	// The channel with the smallest L1 row in layer1.0.conv2 goes, from
	// conv1, bn1, layer1.0.conv1's inputs, ... too.
	w := start.Layer("layer1.0.conv2").Weights[0]
	ch := channelsOf(w.Shape, 0)
	best, at := math.Inf(1), -1
	for c := 0; c < ch.count; c++ {
		s := 0.0
		for i := range ch.entries(c) {
			s += math.Abs(float64(w.Data[i]))
		}
		if s < best {
			best, at = s, c
		}
	}
	keep := complement(4, []int{at})
	got := res.Model.Layer("conv1").Weights[0]
	orig := start.Layer("conv1").Weights[0]
	per := len(orig.Data) / 4
	for i, k := range keep {
		if !slices.Equal(got.Data[i*per:(i+1)*per], orig.Data[k*per:(k+1)*per]) {
			t.Errorf("conv1 row %d is not the dense row %d", i, k)
		}
	}
	if n := res.Model.Graph.Node("layer2.0.conv1").In[0][0]; n != 3 {
		t.Errorf("layer2.0.conv1 reads %d channels, want 3", n)
	}
}
