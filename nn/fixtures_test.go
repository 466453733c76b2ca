package nn_test

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
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

// TestPyTorchFixtures runs every layer type against the numbers PyTorch 1.13
// computed for the same small models (testdata/layers, made by make_layers.py):
// eval logits over padded batches, and one training step's logits, loss,
// parameter gradients and updated buffers.
func TestPyTorchFixtures(t *testing.T) {
	files, err := filepath.Glob("../testdata/layers/*.safetensors")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".safetensors")
		t.Run(name, func(t *testing.T) {
			fx := readFixture(t, path)
			m, err := model.FromFile(fx.state, &fx.spec)
			if err != nil {
				t.Fatal(err)
			}
			checkEval(t, fx, m.Clone())
			if fx.train {
				// A short last batch is padded to the graph's batch size:
				// the padding must change nothing PyTorch's smaller batch
				// computes (logits of the real rows, loss, gradients,
				// buffers).
				t.Run("padded", func(t *testing.T) { checkTrain(t, fx, m.Clone(), 3) })
				checkTrain(t, fx, m, 0)
			}
		})
	}
}

type fixture struct {
	spec      arch.Spec
	state     *checkpoint.File // the state_dict tensors alone
	all       *checkpoint.File
	x         *data.Split
	evalBatch int
	train     bool
}

func readFixture(t *testing.T, path string) *fixture {
	t.Helper()
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{all: f, state: &checkpoint.File{}, train: f.Metadata["train"] == "true"}
	if missing := fx.unsupported(); missing != "" {
		t.Skipf("layer type %s is not implemented yet", missing)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(f.Metadata["model"]), &raw); err != nil {
		t.Fatal(err)
	}
	spec := arch.Default()
	if errs := config.Decode(testkit.JSONInts(raw).(map[string]any), spec); len(errs) > 0 {
		t.Fatalf("model section: %v", errs)
	}
	fx.spec = *spec
	if fx.evalBatch, err = strconv.Atoi(f.Metadata["eval_batch"]); err != nil {
		t.Fatal(err)
	}
	for _, n := range f.Names() {
		if n == "x" || n == "y" || strings.HasPrefix(n, "eval.") || strings.HasPrefix(n, "train.") || strings.HasPrefix(n, "grad.") {
			continue
		}
		tn, _ := f.Get(n)
		fx.state.Set(*tn)
	}
	x, _ := f.Get("x")
	y := ints(t, f, "y")
	split := &data.Split{N: x.Shape[0], Shape: x.Shape[1:]}
	split.Features = arch.Shape(split.Shape).Size()
	if v, err := x.Float32s(); err == nil {
		split.X = v
	} else {
		for _, id := range ints(t, f, "x") {
			split.X = append(split.X, float32(id))
		}
	}
	for _, v := range y {
		split.Y = append(split.Y, int32(v))
	}
	fx.x = split
	return fx
}

// unsupported names a layer type of the fixture no package registers yet.
func (fx *fixture) unsupported() string {
	var raw struct {
		Layers []struct {
			Type string `json:"type"`
		} `json:"layers"`
	}
	_ = json.Unmarshal([]byte(fx.all.Metadata["model"]), &raw)
	for _, l := range raw.Layers {
		if _, ok := arch.LayerTypeOf(l.Type); !ok {
			return l.Type
		}
	}
	return ""
}

func ints(t *testing.T, f *checkpoint.File, name string) []int64 {
	t.Helper()
	tn, ok := f.Get(name)
	if !ok {
		t.Fatalf("no %s", name)
	}
	v, err := tn.Int64s()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func floats(t *testing.T, f *checkpoint.File, name string) []float32 {
	t.Helper()
	tn, ok := f.Get(name)
	if !ok {
		t.Fatalf("no %s", name)
	}
	v, err := tn.Float32s()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// close reports whether got is want within tol times want's largest magnitude
// (the fixtures' README explains why per-element relative error is wrong for
// gradients that are rounding noise around zero).
func closeTo(t *testing.T, what string, got, want []float32, tol float64) {
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
		t.Errorf("%s: off by %g at %d (got %g, want %g; largest |value| %g, tolerance %g of it)", what, worst, at, got[at], want[at], scale, tol)
	}
	t.Logf("%s: off by %.1e of the largest |value| (tolerance %g)", what, worst/max(scale, 1e-30), tol)
}

func checkEval(t *testing.T, fx *fixture, m *model.Model) {
	t.Helper()
	got, err := model.Logits(context.Background(), m, fx.x, fx.evalBatch)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "eval logits (batch "+strconv.Itoa(fx.evalBatch)+")", got, floats(t, fx.all, "eval.logits"), 1e-4)
}

// checkTrain runs one training step on the fixture's n rows in a graph of
// n+pad rows, the padding rows holding copies of real rows (in reverse, so
// they would shift every mean they entered) labelled model.Ignore and
// excluded with SetRows, as model.Train pads a short last batch.
func checkTrain(t *testing.T, fx *fixture, m *model.Model, pad int) {
	t.Helper()
	n := fx.x.N
	net, err := model.Build(m, model.NetOptions{Batch: n + pad, Mode: model.ModeTrain})
	if err != nil {
		t.Fatal(err)
	}
	row := len(fx.x.X) / n
	copy(net.X, fx.x.X)
	for i := 0; i < pad; i++ {
		src := n - 1 - i%n
		copy(net.X[(n+i)*row:(n+i+1)*row], fx.x.X[src*row:(src+1)*row])
	}
	for i := range net.Labels {
		net.Labels[i] = model.Ignore
	}
	for i, y := range fx.x.Y {
		net.Labels[i] = float32(y)
	}
	net.SetRows(n) // as the trainer says of a short batch
	if err := net.Run(); err != nil {
		t.Fatal(err)
	}
	logits := net.Logits()
	closeTo(t, "train logits", logits[:len(logits)*n/(n+pad)], floats(t, fx.all, "train.logits"), 1e-4)
	if got, want := net.LastLoss().Loss, float64(floats(t, fx.all, "train.loss")[0]); math.Abs(got-want) > 1e-5*max(1, math.Abs(want)) {
		t.Errorf("train loss %g, want %g", got, want)
	}
	// Gradients against the largest gradient in the file.
	var scale float64
	for _, p := range net.Params() {
		for _, g := range floats(t, fx.all, "grad."+p.Name) {
			scale = max(scale, math.Abs(float64(g)))
		}
	}
	seen := 0
	var worst float64
	for _, p := range net.Params() {
		want := floats(t, fx.all, "grad."+p.Name)
		got := p.Grad()
		for i := range want {
			d := math.Abs(float64(got[i]) - float64(want[i]))
			worst = max(worst, d)
			if d > 1e-4*scale || math.IsNaN(d) {
				t.Errorf("grad %s[%d] = %g, want %g (largest gradient %g)", p.Name, i, got[i], want[i], scale)
				break
			}
		}
		seen++
	}
	t.Logf("gradients: off by %.1e of the largest gradient (tolerance 1e-4)", worst/max(scale, 1e-30))
	for _, name := range fx.all.Names() {
		if strings.HasPrefix(name, "grad.") {
			seen--
		}
	}
	if seen != 0 {
		t.Errorf("shrink trains %d parameters, PyTorch's model has %d more", len(net.Params()), -seen)
	}
	for _, l := range m.Layers {
		for _, b := range l.Buffers {
			closeTo(t, "buffer "+b.Name+" after one training step", b.Data, floats(t, fx.all, "train."+b.Name), 1e-5)
		}
		for _, c := range l.Counters {
			if want := ints(t, fx.all, "train."+c.Name)[0]; c.Value != want {
				t.Errorf("%s = %d after one training step, want %d", c.Name, c.Value, want)
			}
		}
	}
}
