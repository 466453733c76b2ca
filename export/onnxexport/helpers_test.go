package onnxexport

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/npy"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/quant"
)

// The compressions below change a model as the stages do, so the exports are
// checked on the states the stages leave.

// prune zeroes a share of every weight of the layers (all when none are
// named), with masks, as unstructured pruning does.
func prune(m *model.Model, rng *rand.Rand, sparsity float64, layers ...string) {
	for _, l := range m.WeightLayers() {
		if len(layers) > 0 && !slices.Contains(layers, l.Name) {
			continue
		}
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

// factor replaces a layer's weight by two random factors of rank k, as
// lowrank does.
func factor(m *model.Model, rng *rand.Rand, name string, k int) {
	l := m.Layer(name)
	f := l.Config.(arch.Factorable)
	first, second := f.FactorShapes(l.In, k)
	a, b := make([]float32, arch.Shape(first).Size()), make([]float32, arch.Shape(second).Size())
	for _, w := range [][]float32{a, b} {
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.3)
		}
	}
	l.SetFactors(a, b)
}

// qspec is a quantization as a recipe states it: weights, inputs, mode.
type qspec struct {
	weights quant.Spec
	inputs  quant.Spec
	mode    string // static or dynamic
}

var (
	int8sym  = quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
	int8asym = quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}
	act8     = quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}
)

// quantize marks and snaps the layers (all weight layers when none are
// named) as the quantize stage does, calibrating static inputs on calib.
func quantize(t testing.TB, m *model.Model, q qspec, calib *data.Split, layers ...string) {
	t.Helper()
	var names []string
	for _, l := range m.WeightLayers() {
		if len(layers) > 0 && !slices.Contains(layers, l.Name) {
			continue
		}
		if c := l.Caps(); q.mode == "static" && !c.Static || q.mode == "dynamic" && !c.Dynamic {
			continue // as the stage's layer filter (an embedding)
		}
		w := q.weights
		l.Quant = &w
		for _, x := range l.Weights {
			x.QParams = nil
		}
		l.Input = &model.ActQuant{Mode: q.mode, Spec: q.inputs}
		names = append(names, l.Name)
	}
	if q.mode == "static" {
		if err := model.Calibrate(context.Background(), m, calib, model.CalibrateOptions{BatchSize: 32, Layers: names}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		m.Layer(n).Requantize()
	}
}

// split is n random samples for the model's input: normal values, or
// non-negative ones like normalized pixels when positive.
func split(spec arch.Spec, n int, seed uint64) *data.Split {
	rng := rand.New(rand.NewPCG(seed, 99))
	features := spec.Features()
	s := &data.Split{X: make([]float32, n*features), Y: make([]int32, n), N: n, Features: features, Shape: spec.InputShape()}
	for i := range s.X {
		s.X[i] = float32(rng.NormFloat64())
	}
	if g, err := spec.Graph(); err == nil && g.Nodes[0].Type == "embedding" {
		num := g.Nodes[0].Config.(*nn.Embedding).Num
		for i := range s.X {
			s.X[i] = float32(rng.IntN(num)) // token ids
		}
	}
	return s
}

// saved is the model as shrink stores and loads it: what an export starts
// from.
func saved(t *testing.T, m *model.Model) *model.Model {
	t.Helper()
	f, err := m.ToFile(map[string]string{"stage": "test", "recipe_sha256": "00ff"})
	if err != nil {
		t.Fatal(err)
	}
	back, err := model.FromFile(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// agreement compares two [n, classes] logit matrices: the share of rows
// with the same argmax, the median and the largest |difference|, and the
// largest |logit|.
type agreement struct {
	argmax            float64
	median, max, peak float64
}

func compare(a, b []float32, classes int) agreement {
	n := len(a) / classes
	same := 0
	diffs := make([]float64, len(a))
	var ag agreement
	for i := 0; i < n; i++ {
		if argmax(a[i*classes:(i+1)*classes]) == argmax(b[i*classes:(i+1)*classes]) {
			same++
		}
	}
	for i := range a {
		diffs[i] = math.Abs(float64(a[i]) - float64(b[i]))
		ag.max = max(ag.max, diffs[i])
		ag.peak = max(ag.peak, math.Abs(float64(a[i])))
	}
	sort.Float64s(diffs)
	ag.median = diffs[len(diffs)/2]
	ag.argmax = float64(same) / float64(n)
	return ag
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// runExport exports m, checks the file with ONNX's checker, runs it in
// onnxruntime on s (one batch, as shrink's dynamic quantization sees it) and
// returns both logits.
func runExport(t *testing.T, m *model.Model, s *data.Split, opt Options, ortOpt ortest.Options) (shrink, ort []float32, res *Result) {
	t.Helper()
	res, err := Export(m, opt)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := res.Model.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if !opt.Int4 {
		ortest.Check(t, path) // onnx 1.12's checker stops at IR 8
	}
	want, err := model.Logits(context.Background(), m, s, s.N)
	if err != nil {
		t.Fatal(err)
	}
	shape := append([]int{s.N}, s.SampleShape()...)
	if d := os.Getenv("ONNXEXPORT_KEEP"); d != "" {
		// Keep the export and the graph onnxruntime made of it (its fusions)
		// for a look: ONNXEXPORT_KEEP=/tmp/x go test -run ... ./export/onnxexport
		name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
		b, err := os.ReadFile(path)
		if err == nil {
			err = os.WriteFile(filepath.Join(d, name+".onnx"), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		ortOpt.Optimized = filepath.Join(d, name+"."+ortOpt.Opt+".optimized.onnx")
	}
	out := ortest.Find(t).Run(t, path, map[string]*npy.Array{"input": {Shape: shape, Data: s.X}}, ortOpt)
	got, ok := out.Outputs["logits"]
	if !ok {
		t.Fatalf("no logits among the outputs %v", out.Outputs)
	}
	if !slices.Equal(got.Shape, []int{s.N, m.Spec.Classes}) {
		t.Fatalf("logits are %v, want [%d %d]", got.Shape, s.N, m.Spec.Classes)
	}
	return want, got.Data.([]float32), res
}
