package model_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
)

// loraFixture is one case of testdata/lora (make_lora.py): a small model with
// PEFT-style adapters, and what PyTorch computed with it.
type loraFixture struct {
	all      *checkpoint.File
	spec     arch.Spec
	adapters map[string]struct {
		R      int     `json:"r"`
		Alpha  float64 `json:"alpha"`
		RSLoRA bool    `json:"rslora"`
	}
	frozen    map[string]model.Freeze
	x         *data.Split
	evalBatch int
}

func readLoraFixture(t *testing.T, path string) *loraFixture {
	t.Helper()
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fx := &loraFixture{all: f}
	var raw map[string]any
	if err := json.Unmarshal([]byte(f.Metadata["model"]), &raw); err != nil {
		t.Fatal(err)
	}
	spec := arch.Default()
	if errs := config.Decode(testkit.JSONInts(raw).(map[string]any), spec); len(errs) > 0 {
		t.Fatalf("model section: %v", errs)
	}
	fx.spec = *spec
	if err := json.Unmarshal([]byte(f.Metadata["adapters"]), &fx.adapters); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(f.Metadata["frozen"]), &fx.frozen); err != nil {
		t.Fatal(err)
	}
	if fx.evalBatch, err = strconv.Atoi(f.Metadata["eval_batch"]); err != nil {
		t.Fatal(err)
	}
	x, _ := f.Get("x")
	fx.x = &data.Split{N: x.Shape[0], Shape: x.Shape[1:], Features: arch.Shape(x.Shape[1:]).Size(), X: testkit.Floats(t, f, "x")}
	yt, _ := f.Get("y")
	ys, err := yt.Int64s()
	if err != nil {
		t.Fatal(err)
	}
	for _, y := range ys {
		fx.x.Y = append(fx.x.Y, int32(y))
	}
	return fx
}

// model builds the fixture's model: the base from its state_dict tensors,
// adapters added and overwritten with the fixture's, layers frozen.
func (fx *loraFixture) model(t *testing.T) *model.Model {
	t.Helper()
	state := &checkpoint.File{}
	for _, n := range fx.all.Names() {
		if n == "x" || n == "y" || strings.Contains(n, ".lora_") {
			continue
		}
		if p, _, _ := strings.Cut(n, "."); p == "eval" || p == "train" || p == "grad" || p == "merged" {
			continue
		}
		tn, _ := fx.all.Get(n)
		state.Set(*tn)
	}
	m, err := model.FromFile(state, &fx.spec)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for name, a := range fx.adapters {
		l := m.Layer(name)
		if err := l.AddAdapter(a.R, a.Alpha, a.RSLoRA, 0, rng); err != nil {
			t.Fatal(err)
		}
		an, bn := model.AdapterNames(name)
		copy(l.Adapter.A.Data, testkit.Floats(t, fx.all, an))
		copy(l.Adapter.B.Data, testkit.Floats(t, fx.all, bn))
	}
	for name, how := range fx.frozen {
		m.Layer(name).Frozen = how
	}
	return m
}

// near reports got against want within tol of want's largest magnitude.
func near(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var scale, worst float64
	at := 0
	for _, w := range want {
		scale = max(scale, math.Abs(float64(w)))
	}
	for i := range want {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol*max(scale, 1e-30) || math.IsNaN(worst) {
		t.Errorf("%s: off by %g at %d (got %g, want %g; largest |value| %g)", what, worst, at, got[at], want[at], scale)
	}
}

// TestLoRAAgainstPyTorch checks the adapter graph against PEFT's forward
// written in PyTorch (testdata/lora): eval logits over padded batches, one
// training step's logits, loss, the gradients of exactly the trainable
// tensors (adapters and layers trained in full; frozen ones get none),
// batch norm statistics frozen or updated, and the merged weights and logits.
func TestLoRAAgainstPyTorch(t *testing.T) {
	files, err := filepath.Glob("../testdata/lora/*.safetensors")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".safetensors"), func(t *testing.T) {
			fx := readLoraFixture(t, path)
			m := fx.model(t)
			got, err := model.Logits(context.Background(), m.Clone(), fx.x, fx.evalBatch)
			if err != nil {
				t.Fatal(err)
			}
			near(t, "eval logits", got, testkit.Floats(t, fx.all, "eval.logits"), 1e-5)

			checkLoRATrain(t, fx, m.Clone())

			merged := m.Clone()
			merged.MergeAdapters()
			for name := range fx.adapters {
				l := merged.Layer(name)
				if l.Adapter != nil || l.Frozen != model.Trainable {
					t.Fatalf("%s still has an adapter or is frozen after merging", name)
				}
				// PyTorch's delta went through its own float32 matmul: both are
				// within float32 rounding of the exact W + B A * scaling.
				near(t, "merged "+name, l.Weights[0].Data, testkit.Floats(t, fx.all, "merged."+name+".weight"), 1e-6)
			}
			got, err = model.Logits(context.Background(), merged, fx.x, fx.evalBatch)
			if err != nil {
				t.Fatal(err)
			}
			near(t, "merged eval logits", got, testkit.Floats(t, fx.all, "merged.eval.logits"), 1e-5)
		})
	}
}

func checkLoRATrain(t *testing.T, fx *loraFixture, m *model.Model) {
	t.Helper()
	n := fx.x.N
	net, err := model.Build(m, model.NetOptions{Batch: n, Mode: model.ModeTrain, Rand: rand.New(rand.NewPCG(3, 4))})
	if err != nil {
		t.Fatal(err)
	}
	copy(net.X, fx.x.X)
	for i, y := range fx.x.Y {
		net.Labels[i] = float32(y)
	}
	if err := net.Run(); err != nil {
		t.Fatal(err)
	}
	near(t, "train logits", net.Logits(), testkit.Floats(t, fx.all, "train.logits"), 1e-5)
	if got, want := net.LastLoss().Loss, float64(testkit.Floats(t, fx.all, "train.loss")[0]); math.Abs(got-want) > 1e-5*max(1, math.Abs(want)) {
		t.Errorf("train loss %g, want %g", got, want)
	}
	var want []string
	for _, name := range fx.all.Names() {
		if g, ok := strings.CutPrefix(name, "grad."); ok {
			want = append(want, g)
		}
	}
	var got []string
	var scale float64
	for _, p := range net.Params() {
		got = append(got, p.Name)
		for _, g := range testkit.Floats(t, fx.all, "grad."+p.Name) {
			scale = max(scale, math.Abs(float64(g)))
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("trainable tensors %v, PyTorch's %v", got, want)
	}
	for _, p := range net.Params() {
		wantG := testkit.Floats(t, fx.all, "grad."+p.Name)
		for i, g := range p.Grad() {
			if d := math.Abs(float64(g) - float64(wantG[i])); d > 1e-4*scale || math.IsNaN(d) {
				t.Errorf("grad %s[%d] = %g, want %g (largest gradient %g)", p.Name, i, g, wantG[i], scale)
				break
			}
		}
	}
	for _, l := range m.Layers {
		for _, b := range l.Buffers {
			near(t, "buffer "+b.Name+" after the training forward", b.Data, testkit.Floats(t, fx.all, "train."+b.Name), 1e-5)
		}
	}
}
