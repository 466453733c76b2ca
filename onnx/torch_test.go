package onnx_test

import (
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/shrink-ml/shrink/internal/npy"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/onnx"
)

// The fixtures in testdata/torch come from gen.py there: PyTorch 1.13's
// torch.onnx.export at opset 13, with the input, PyTorch's output and the
// state_dict next to each model.

func fixture(name string) string { return filepath.Join("testdata", "torch", name) }

type torchFixture struct {
	name  string
	ops   []string
	inits []string // initializer names, sorted
	in    []onnx.Dim
	out   []onnx.Dim
}

var torchFixtures = []torchFixture{
	{
		name:  "convnet",
		ops:   []string{"Conv", "Relu", "MaxPool", "Conv", "Relu", "Flatten", "Gemm"},
		inits: []string{"conv2.bias", "conv2.weight", "fc.bias", "fc.weight", "onnx::Conv_21", "onnx::Conv_22"},
		in:    onnx.Batch("N", 1, 8, 8),
		out:   onnx.Batch("N", 5),
	},
	{
		name: "lstm",
		ops: []string{"Shape", "Constant", "Gather", "Constant", "Constant", "Unsqueeze", "Constant", "Concat",
			"ConstantOfShape", "Transpose", "LSTM", "Constant", "Gather", "Gemm"},
		inits: []string{"fc.bias", "fc.weight", "onnx::LSTM_106", "onnx::LSTM_107", "onnx::LSTM_108"},
		in:    onnx.Batch("N", 5, 3),
		out:   onnx.Batch("N", 4),
	},
}

func readTorch(t *testing.T, name string) (*onnx.Model, map[string]*npy.Array) {
	t.Helper()
	m, err := onnx.ReadFile(fixture(name + ".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	state, err := npy.ReadNPZ(fixture(name + "_state.npz"))
	if err != nil {
		t.Fatal(err)
	}
	return m, state
}

func TestTorchExportStructure(t *testing.T) {
	for _, tt := range torchFixtures {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := readTorch(t, tt.name)
			if m.ProducerName != "pytorch" || m.IRVersion != 7 || m.Opset("") != 13 {
				t.Errorf("producer %q, IR %d, opset %d: want pytorch, 7, 13", m.ProducerName, m.IRVersion, m.Opset(""))
			}
			g := m.Graph
			if ops := g.OpTypes(); !reflect.DeepEqual(ops, tt.ops) {
				t.Errorf("ops %v, want %v", ops, tt.ops)
			}
			var names []string
			for _, init := range g.Initializers {
				names = append(names, init.Name)
			}
			sort.Strings(names)
			if !reflect.DeepEqual(names, tt.inits) {
				t.Errorf("initializers %v, want %v", names, tt.inits)
			}
			want := []onnx.ValueInfo{{Name: "input", Type: onnx.TypeFloat, Shape: tt.in}}
			if !reflect.DeepEqual(g.Inputs, want) {
				t.Errorf("inputs %+v, want %+v", g.Inputs, want)
			}
			want = []onnx.ValueInfo{{Name: "logits", Type: onnx.TypeFloat, Shape: tt.out}}
			if !reflect.DeepEqual(g.Outputs, want) {
				t.Errorf("outputs %+v, want %+v", g.Outputs, want)
			}
		})
	}
}

// TestTorchConvNetWeights: unfused layers keep their state_dict names and
// bits; the exporter folds BatchNorm into conv1 under generated names, with
// w·γ/√(σ²+ε) and (b-μ)·γ/√(σ²+ε)+β.
func TestTorchConvNetWeights(t *testing.T) {
	m, state := readTorch(t, "convnet")
	g := m.Graph
	for _, name := range []string{"conv2.weight", "conv2.bias", "fc.weight", "fc.bias"} {
		sameAsState(t, g.Initializer(name), state[name])
	}
	conv1 := g.Nodes[0]
	if a, ok := conv1.Attr("pads"); !ok || !reflect.DeepEqual(a.Ints, []int64{1, 1, 1, 1}) {
		t.Errorf("conv1 pads %+v, want [1 1 1 1]", a)
	}
	if a, ok := conv1.Attr("kernel_shape"); !ok || !reflect.DeepEqual(a.Ints, []int64{3, 3}) {
		t.Errorf("conv1 kernel_shape %+v, want [3 3]", a)
	}
	w, b := g.Initializer(conv1.Inputs[1]), g.Initializer(conv1.Inputs[2])
	if w == nil || b == nil || !reflect.DeepEqual(w.Dims, []int64{4, 1, 3, 3}) || !reflect.DeepEqual(b.Dims, []int64{4}) {
		t.Fatalf("conv1 weight %v and bias %v, want initializers of [4 1 3 3] and [4]", w, b)
	}
	cw, cb := f32(t, state["conv1.weight"]), f32(t, state["conv1.bias"])
	gamma, beta := f32(t, state["bn1.weight"]), f32(t, state["bn1.bias"])
	mean, variance := f32(t, state["bn1.running_mean"]), f32(t, state["bn1.running_var"])
	const eps = 1e-5 // BatchNorm2d's default
	for c := 0; c < 4; c++ {
		s := float64(gamma[c]) / math.Sqrt(float64(variance[c])+eps)
		for k := 0; k < 9; k++ {
			near(t, fmt.Sprintf("folded weight[%d][%d]", c, k), w.Float32[c*9+k], float64(cw[c*9+k])*s)
		}
		near(t, fmt.Sprintf("folded bias[%d]", c), b.Float32[c], (float64(cb[c])-float64(mean[c]))*s+float64(beta[c]))
	}
}

// TestTorchLSTMWeights: the exporter stacks PyTorch's gates (input, forget,
// cell, output) in ONNX's order (input, output, forget, cell), and joins the
// two biases into one B.
func TestTorchLSTMWeights(t *testing.T) {
	m, state := readTorch(t, "lstm")
	g := m.Graph
	sameAsState(t, g.Initializer("fc.weight"), state["fc.weight"])
	sameAsState(t, g.Initializer("fc.bias"), state["fc.bias"])
	var lstm *onnx.Node
	for i := range g.Nodes {
		if g.Nodes[i].OpType == "LSTM" {
			lstm = &g.Nodes[i]
		}
	}
	if a, ok := lstm.Attr("hidden_size"); !ok || a.Int != 6 {
		t.Errorf("hidden_size %+v, want 6", a)
	}
	const hidden = 6
	reorder := func(x []float32, rows int) []float32 {
		per := len(x) / rows // values per gate row
		var out []float32
		for _, gate := range []int{0, 3, 1, 2} { // i, o, f, c from i, f, g, o
			out = append(out, x[gate*hidden*per:(gate+1)*hidden*per]...)
		}
		return out
	}
	for _, tt := range []struct {
		input int
		dims  []int64
		want  []float32
	}{
		{1, []int64{1, 24, 3}, reorder(f32(t, state["lstm.weight_ih_l0"]), 24)},
		{2, []int64{1, 24, 6}, reorder(f32(t, state["lstm.weight_hh_l0"]), 24)},
		{3, []int64{1, 48}, append(reorder(f32(t, state["lstm.bias_ih_l0"]), 24), reorder(f32(t, state["lstm.bias_hh_l0"]), 24)...)},
	} {
		got := g.Initializer(lstm.Inputs[tt.input])
		if got == nil || !reflect.DeepEqual(got.Dims, tt.dims) || !reflect.DeepEqual(got.Float32, tt.want) {
			t.Errorf("LSTM input %d (%s): %v, want dims %v and PyTorch's values in ONNX's gate order", tt.input, lstm.Inputs[tt.input], got, tt.dims)
		}
	}
	// The Constant nodes carry their values as TENSOR attributes.
	for _, n := range g.Nodes {
		if n.OpType != "Constant" {
			continue
		}
		if a, ok := n.Attr("value"); !ok || a.Type != onnx.AttrTypeTensor || a.Tensor.Type != onnx.TypeInt64 || len(a.Tensor.Int64) != 1 {
			t.Errorf("Constant %q: value %+v, want one INT64", n.Name, a)
		}
	}
}

// TestTorchExportInOnnxruntime runs each fixture, and the same model
// parsed and written again by this package, in onnxruntime on the fixture's
// input, against PyTorch's output.
func TestTorchExportInOnnxruntime(t *testing.T) {
	rt := ortest.Find(t)
	for _, tt := range torchFixtures {
		t.Run(tt.name, func(t *testing.T) {
			in, err := npy.ReadFile(fixture(tt.name + "_input.npy"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := npy.ReadFile(fixture(tt.name + "_output.npy"))
			if err != nil {
				t.Fatal(err)
			}
			m, _ := readTorch(t, tt.name)
			rewritten := filepath.Join(t.TempDir(), tt.name+".onnx")
			if err := m.WriteFile(rewritten); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{fixture(tt.name + ".onnx"), rewritten} {
				ortest.Check(t, path)
				got := rt.Run(t, path, map[string]*npy.Array{"input": in}, ortest.Options{}).Outputs["logits"]
				if got == nil || !reflect.DeepEqual(got.Shape, want.Shape) {
					t.Fatalf("%s: logits %v, want shape %v", path, got, want.Shape)
				}
				w := f32(t, want)
				for i, v := range f32(t, got) {
					// Different kernels, same float32: agree to a few ulps of the
					// magnitudes involved, which are about 1 here.
					if d := math.Abs(float64(v - w[i])); d > 1e-5 {
						t.Errorf("%s: logits[%d] = %v, PyTorch %v", path, i, v, w[i])
					}
				}
			}
		})
	}
}

func f32(t *testing.T, a *npy.Array) []float32 {
	t.Helper()
	if a == nil {
		t.Fatal("missing array")
	}
	v, ok := a.Data.([]float32)
	if !ok {
		t.Fatalf("array of %s, want float32", a.DType())
	}
	return v
}

func sameAsState(t *testing.T, got *onnx.Tensor, want *npy.Array) {
	t.Helper()
	if got == nil {
		t.Fatal("no such initializer")
	}
	dims := make([]int64, len(want.Shape))
	for i, d := range want.Shape {
		dims[i] = int64(d)
	}
	if got.Type != onnx.TypeFloat || !reflect.DeepEqual(got.Dims, dims) || !reflect.DeepEqual(got.Float32, f32(t, want)) {
		t.Errorf("initializer %q (%s %v) differs from the state_dict's %v", got.Name, got.Type, got.Dims, want.Shape)
	}
}

// near compares a float32 PyTorch computed with a float64 reference: a few
// float32 roundings apart at most.
func near(t *testing.T, what string, got float32, want float64) {
	t.Helper()
	if d := math.Abs(float64(got) - want); d > 4*0x1p-24*math.Abs(want)+1e-30 {
		t.Errorf("%s = %v, want %v (off by %.3g)", what, got, want, d)
	}
}
