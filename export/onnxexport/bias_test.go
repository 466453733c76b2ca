package onnxexport

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/onnx"
)

// trainedResNet8 is testdata/models/resnet8-fashion.safetensors, a
// PyTorch-trained ResNet-8 (batch norms after every convolution), and
// Fashion-MNIST's test images: calibration on the first 512, the check on
// the next 2,000. Random weights do not do: an untrained network's logits
// hardly move when an activation moves by a step.
func trainedResNet8(t *testing.T) (*model.Model, *data.Split, *data.Split) {
	t.Helper()
	calib, test := fashion(t)
	state, err := checkpoint.ReadFile(filepath.Join("..", "..", "testdata", "models", "resnet8-fashion.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	spec := arch.Spec{Arch: "resnet", Depth: 8, Width: 8, Input: arch.Shape{1, 28, 28}, Classes: 10}
	m, err := model.FromFile(state, &spec)
	if err != nil {
		t.Fatal(err)
	}
	return m, calib, test
}

// fashion is Fashion-MNIST's first 512 test images (to calibrate) and the
// 2,000 after them (to compare), as [1, 28, 28] images.
func fashion(t *testing.T) (calib, test *data.Split) {
	t.Helper()
	if _, err := data.FindFashionMNIST(); err != nil {
		if os.Getenv("SHRINK_REQUIRE_FASHION") == "1" {
			t.Fatalf("SHRINK_REQUIRE_FASHION=1 but Fashion-MNIST is not available: %v", err)
		}
		t.Skipf("Fashion-MNIST is not available (apt-get install dataset-fashion-mnist): %v", err)
	}
	cfg := data.DefaultConfig()
	cfg.Dataset = data.KindFashionMNIST
	cfg.Layout = data.LayoutImage
	ds, err := data.Load(cfg, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	return ds.Test.Slice(0, 512), ds.Test.Slice(512, 2512)
}

// TestBiasRule checks the default bias rule (planBiases) against
// onnxruntime: a deep convolutional network's default export meets the
// quantized bar (99.5% of the classes, median |logit difference| 2e-3)
// where IntBias, every bias rounded to INT32, misses it, and shallow
// models keep every integer kernel (QGemm, QLinearConv in the graph
// onnxruntime optimizes) with their biases in the nodes.
func TestBiasRule(t *testing.T) {
	for _, c := range []struct {
		name    string
		spec    *arch.Spec // nil: the trained ResNet-8
		opt     Options
		meets   bool     // the bar
		apart   []string // layers the budget keeps apart
		kernels []string // integer operators onnxruntime's optimized graph must hold
		allInt  bool     // every bias in its node: no Conv or Gemm left in float
	}{
		{name: "trained resnet8 default", meets: true, apart: []string{"layer1.0.conv1"}},
		{name: "trained resnet8 int-bias", opt: Options{IntBias: true}, meets: false},
		{name: "trained resnet8 float-bias", opt: Options{FloatBias: true}, meets: true},
		{name: "lenet-300-100 default", spec: &lenet300, meets: true, kernels: []string{"QGemm"}, allInt: true},
		{name: "lenet5 default", spec: &lenet5Classic, meets: true, kernels: []string{"QLinearConv", "QGemm"}, allInt: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var m *model.Model
			var calib, test *data.Split
			if c.spec == nil {
				m, calib, test = trainedResNet8(t)
			} else {
				// Images, whose scales are a real model's (normal random
				// inputs have a wider range, hence coarser input scales).
				m = model.MustNew(*c.spec, rand.New(rand.NewPCG(5, 6)))
				calib, test = fashion(t)
				if m.Spec.Arch == "mlp" {
					calib = &data.Split{X: calib.X, Y: calib.Y, N: calib.N, Features: calib.Features}
					test = &data.Split{X: test.X, Y: test.Y, N: test.N, Features: test.Features}
				}
			}
			quantize(t, m, qspec{int8sym, act8, "static"}, calib)
			m = saved(t, m)
			optimized := filepath.Join(t.TempDir(), "optimized.onnx")
			want, got, res := runExport(t, m, test, c.opt, ortest.Options{Optimized: optimized})
			ag := compare(want, got, m.Spec.Classes)
			t.Logf("argmax %.4f, median |diff| %.2g, max %.2g", ag.argmax, ag.median, ag.max)
			for _, n := range res.Notes {
				if strings.Contains(n, "INT32") {
					t.Log("note: " + n)
				}
			}
			if meets := ag.argmax >= 0.995 && ag.median <= 2e-3; meets != c.meets {
				t.Errorf("argmax agreement %.4f, median |diff| %.3g: meets the bar %v, want %v", ag.argmax, ag.median, meets, c.meets)
			}
			apart := func(l string) bool {
				return slices.ContainsFunc(res.Notes, func(n string) bool { return strings.HasPrefix(n, l+": bias kept apart") })
			}
			for _, l := range c.apart {
				if !apart(l) {
					t.Errorf("no note keeps %s's bias apart: %q", l, res.Notes)
				}
			}
			g, err := onnx.ReadFile(optimized)
			if err != nil {
				t.Fatal(err)
			}
			ops := map[string]int{}
			for _, n := range g.Graph.Nodes {
				ops[n.OpType]++
			}
			t.Logf("onnxruntime's graph: %v", ops)
			for _, k := range c.kernels {
				if ops[k] == 0 {
					t.Errorf("no %s in onnxruntime's optimized graph: %v", k, ops)
				}
			}
			if c.allInt {
				for _, l := range m.WeightLayers() {
					if apart(l.Name) {
						t.Errorf("%s's bias is kept apart: %q", l.Name, res.Notes)
					}
				}
				if ops["Conv"]+ops["Gemm"] > 0 {
					t.Errorf("onnxruntime runs %d Conv and %d Gemm in float: %v", ops["Conv"], ops["Gemm"], ops)
				}
			}
		})
	}
}

// The shipped recipes' shallow models at their sizes: the quickstart's
// LeNet-300-100 and the classic 6-16-120-84 LeNet-5 (tools/ortcheck's
// deploy recipes), whose int8 speed in onnxruntime docs/DEPLOY.md reports.
var (
	lenet300      = arch.Spec{Arch: "mlp", Inputs: 784, Hidden: []int{300, 100}, Classes: 10}
	lenet5Classic = arch.Spec{Arch: "lenet5", Classes: 10}
)

// FloatBias and IntBias ask for opposite graphs: an export with both is an
// error that says so.
func TestBiasOptionsExclusive(t *testing.T) {
	m := model.MustNew(mlp, rand.New(rand.NewPCG(5, 6)))
	_, err := Export(m, Options{FloatBias: true, IntBias: true})
	if err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Fatalf("err = %v, want FloatBias and IntBias excluding each other", err)
	}
}

// A negative BiasBudget, which would keep every bias apart unasked, is an
// error that names the option and what to give.
func TestBiasBudgetNegative(t *testing.T) {
	m := model.MustNew(mlp, rand.New(rand.NewPCG(5, 6)))
	_, err := Export(m, Options{BiasBudget: -1})
	if err == nil || !strings.Contains(err.Error(), "BiasBudget -1: give 0 or more") {
		t.Fatalf("err = %v, want BiasBudget -1 refused", err)
	}
}

// The estimate is positions x sum_c e_c / s_out with e_c the bias's INT32
// rounding error in units of s_in x s_w[c], s_out the next layer's input
// scale and positions the values of a channel that layer reads: every
// output of a linear layer once, a convolution's after max pooling.
func TestBiasCost(t *testing.T) {
	for _, c := range []struct {
		name      string
		spec      arch.Spec
		layer     string
		next      string
		positions int
	}{
		{"mlp fc1", lenet300, "fc1", "fc2", 1},
		{"mlp fc2", lenet300, "fc2", "fc3", 1},
		{"lenet5 conv1 through max pooling", lenet5Classic, "conv1", "conv2", 12 * 12},
		{"lenet5 conv2 through pooling and flatten", lenet5Classic, "conv2", "fc1", 4 * 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := model.MustNew(c.spec, rand.New(rand.NewPCG(5, 6)))
			quantize(t, m, qspec{int8sym, act8, "static"}, split(m.Spec, 64, 7))
			m = saved(t, m)
			b := &builder{m: m}
			b.planFolds()
			got, ok := b.biasCost(m.Layer(c.layer))
			if !ok {
				t.Fatalf("%s: no bias cost", c.layer)
			}
			l := m.Layer(c.layer)
			sIn := float64(l.Input.Params.Scale[0])
			sOut := float64(m.Layer(c.next).Input.Params.Scale[0])
			scales := l.Weights[0].QParams.Scale
			var want float64
			for ch, v := range l.Bias().Data {
				s := sIn * float64(scales[ch])
				q := math.Round(float64(v) / s)
				want += math.Abs(float64(v)-q*s) / sOut
			}
			want *= float64(c.positions)
			// The export multiplies the scales in float32, as onnxruntime does.
			if math.Abs(got.flips-want) > 1e-3*want {
				t.Errorf("%s: %.6g moved activations per sample, want %.6g", c.layer, got.flips, want)
			}
			if got.flips <= 0 {
				t.Errorf("%s: estimate %g, want > 0", c.layer, got.flips)
			}
		})
	}
}

// A bias whose INT32 code is past int32's range (a channel with all its
// weights pruned has the smallest weight scale, so any sizeable bias
// overflows) cannot be rounded into the node at all: onnxruntime's Cast to
// INT32 has no defined result there (x86 gives -2^31, a bias of the wrong
// sign and size). Its rounding error on the grid looks tiny, so the
// estimate must not be taken from it: the layer's bias stays apart.
func TestBiasCostInt32Overflow(t *testing.T) {
	for _, c := range []struct {
		name  string
		codes float64 // the bias channel's value in units of s_in x s_w
		opt   Options
		apart bool
	}{
		{"in range", 1e9, Options{}, false},
		{"past int32", 3e9, Options{}, true},
		{"past int32, negative", -3e9, Options{}, true},
		{"in range, int-bias", 1e9, Options{IntBias: true}, false},
		{"past int32, int-bias", 3e9, Options{IntBias: true}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := model.MustNew(lenet300, rand.New(rand.NewPCG(5, 6)))
			quantize(t, m, qspec{int8sym, act8, "static"}, split(m.Spec, 64, 7))
			m = saved(t, m)
			l := m.Layer("fc2")
			s := l.Input.Params.Scale[0] * l.Weights[0].QParams.Scale[0]
			// Within half a code of a code: the rounding error alone says cheap.
			l.Bias().Data[0] = float32(c.codes) * s
			b := &builder{m: m, opt: c.opt}
			b.planFolds()
			b.planBiases()
			if got := b.overBudget[l.Index]; got != c.apart {
				cost, _ := b.biasCost(l)
				t.Errorf("fc2 with a bias of %.3g codes: kept apart %v, want %v (estimate %g)", c.codes, got, c.apart, cost.flips)
			}
		})
	}
}

// onnxruntime runs the export of a model with a pruned output channel (all
// its weights zero: the smallest weight scale) whose bias is past INT32's
// range in units of s_in x s_w as shrink does, with the default rule and
// with IntBias: the bias is added apart, not cast to INT32.
func TestBiasPastInt32RunsInORT(t *testing.T) {
	calib, test := fashion(t)
	calib = &data.Split{X: calib.X, Y: calib.Y, N: calib.N, Features: calib.Features}
	test = &data.Split{X: test.X, Y: test.Y, N: test.N, Features: test.Features}
	prune := func(bias float32) *model.Model {
		m := model.MustNew(lenet300, rand.New(rand.NewPCG(5, 6)))
		fc2 := m.Layer("fc2")
		clear(fc2.Weights[0].Data[:fc2.Weights[0].Shape[1]])
		fc2.Bias().Data[0] = bias
		quantize(t, m, qspec{int8sym, act8, "static"}, calib)
		return saved(t, m)
	}
	// fc2's input scale does not depend on fc2: learn it, then put the
	// pruned channel's bias at 3e9 codes.
	fc2 := prune(0).Layer("fc2")
	s := fc2.Input.Params.Scale[0] * fc2.Weights[0].QParams.Scale[0]
	m := prune(3e9 * s)
	t.Logf("fc2's pruned channel: bias %.3g, s_in x s_w %.3g", 3e9*s, s)
	for _, opt := range []Options{{}, {IntBias: true}} {
		want, got, res := runExport(t, m, test, opt, ortest.Options{})
		ag := compare(want, got, m.Spec.Classes)
		t.Logf("IntBias %v: argmax %.4f, median |diff| %.2g, max %.2g", opt.IntBias, ag.argmax, ag.median, ag.max)
		if ag.argmax < 0.995 || ag.median > 2e-3 {
			t.Errorf("IntBias %v: argmax agreement %.4f, median |diff| %.3g: onnxruntime's logits are not shrink's (notes %q)", opt.IntBias, ag.argmax, ag.median, res.Notes)
		}
	}
}
