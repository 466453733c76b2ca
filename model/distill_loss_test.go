package model

import (
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/checkpoint"
)

// distillVector is one PyTorch reference case of the distillation loss
// (testdata/oracle/distill_T*_a*.safetensors, copied from the shared oracle).
type distillVector struct {
	name               string
	temperature, alpha float64
	student, teacher   []float32
	labels             []float32 // class indices as the graph reads them
	classes            int
	loss, ce, kl       float64
	grad               []float32
}

func loadDistillVectors(t *testing.T) []distillVector {
	t.Helper()
	paths, err := filepath.Glob("../testdata/oracle/distill_T*_a*.safetensors")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no distillation vectors in testdata/oracle (copy them from the shared oracle): %v", err)
	}
	var out []distillVector
	for _, p := range paths {
		f, err := checkpoint.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		floats := func(name string) []float32 {
			tn, ok := f.Get(name)
			if !ok {
				t.Fatalf("%s: no tensor %s", p, name)
			}
			v, err := tn.Float32s()
			if err != nil {
				t.Fatalf("%s: %s: %v", p, name, err)
			}
			return v
		}
		number := func(key string) float64 {
			v, err := strconv.ParseFloat(f.Metadata[key], 64)
			if err != nil {
				t.Fatalf("%s: metadata %s: %v", p, key, err)
			}
			return v
		}
		lt, ok := f.Get("labels")
		if !ok {
			t.Fatalf("%s: no labels", p)
		}
		ys, err := lt.Int64s()
		if err != nil {
			t.Fatal(err)
		}
		labels := make([]float32, len(ys))
		for i, y := range ys {
			labels[i] = float32(y)
		}
		s, _ := f.Get("student_logits")
		v := distillVector{
			name:        filepath.Base(p),
			temperature: number("temperature"), alpha: number("alpha"),
			student: floats("student_logits"), teacher: floats("teacher_logits"), labels: labels,
			classes: s.Shape[1],
			// The F32 loss in the file is rounded; the metadata keeps PyTorch's float64.
			loss: number("loss"), ce: float64(floats("ce")[0]), kl: float64(floats("kl_T2")[0]),
			grad: floats("grad_student"),
		}
		out = append(out, v)
	}
	return out
}

// within is the oracle's tolerance for losses: 1e-5 relative, or absolute below 1.
func within(got, want float64) bool {
	return math.Abs(got-want) <= 1e-5*max(1, math.Abs(want))
}

// TestDistillLossMatchesPyTorch checks the loss, its CE and KL·T² parts and its
// gradient against every PyTorch vector.
func TestDistillLossMatchesPyTorch(t *testing.T) {
	for _, v := range loadDistillVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			l := Loss{Distill: true, Temperature: v.temperature, Alpha: v.alpha}
			grad := make([]float32, len(v.student))
			got := l.Compute(v.student, v.teacher, v.labels, v.classes, grad)
			for _, c := range []struct {
				part      string
				got, want float64
			}{{"loss", got.Loss, v.loss}, {"ce", got.CE, v.ce}, {"kl_T2", got.KL, v.kl}} {
				if !within(c.got, c.want) {
					t.Errorf("%s = %.9g, PyTorch %.9g", c.part, c.got, c.want)
				}
			}
			for i := range grad {
				if d := math.Abs(float64(grad[i] - v.grad[i])); d > 1e-5 {
					t.Errorf("grad[%d,%d] = %.9g, PyTorch %.9g", i/v.classes, i%v.classes, grad[i], v.grad[i])
				}
			}
		})
	}
}

// TestDistillLossGradientThroughGraph runs the loss as the training graph does (a
// logits parameter, the loss op, gorgonia's backward pass) and checks the gradient
// that reaches the parameter, so the op's wiring is covered and not only Compute.
func TestDistillLossGradientThroughGraph(t *testing.T) {
	for _, v := range loadDistillVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			rows := len(v.labels)
			grad, value := lossGradientViaGraph(t, Loss{Distill: true, Temperature: v.temperature, Alpha: v.alpha},
				v.student, v.teacher, v.labels, rows, v.classes)
			if !within(value, v.loss) {
				t.Errorf("loss = %.9g, PyTorch %.9g", value, v.loss)
			}
			for i := range grad {
				if d := math.Abs(float64(grad[i] - v.grad[i])); d > 1e-5 {
					t.Errorf("grad[%d,%d] = %.9g, PyTorch %.9g", i/v.classes, i%v.classes, grad[i], v.grad[i])
				}
			}
		})
	}
}

// lossGradientViaGraph returns d loss / d logits as gorgonia's backward pass
// delivers it, and the loss value, for a graph holding only the loss.
func lossGradientViaGraph(t *testing.T, l Loss, logits, teacher, labels []float32, rows, classes int) ([]float32, float64) {
	t.Helper()
	g := G.NewGraph()
	matrix := func(name string, data []float32) *G.Node {
		return G.NewMatrix(g, tensor.Float32, G.WithShape(rows, classes), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(rows, classes), tensor.WithBacking(slices.Clone(data)))))
	}
	s := matrix("s", logits)
	y := G.NewVector(g, tensor.Float32, G.WithShape(rows), G.WithName("y"),
		G.WithValue(tensor.New(tensor.WithShape(rows), tensor.WithBacking(slices.Clone(labels)))))
	op := &lossOp{opBase: newBase("loss"), loss: l}
	in := []*G.Node{s, y}
	if l.Distill {
		in = append(in, matrix("t", teacher))
	}
	loss, err := G.ApplyOp(op, in...)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(loss, s)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(grads[0].Value().Data().([]float32)), op.last.Loss
}
