package onnx_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/shrink-ml/shrink/internal/npy"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/onnx"
)

// layer is a dense layer y = x Wᵀ + b, W of shape [out, in] as PyTorch keeps it.
type layer struct {
	in, out int
	w, b    []float32
}

func randomLayer(r *rand.Rand, in, out int) layer {
	l := layer{in: in, out: out, w: make([]float32, in*out), b: make([]float32, out)}
	bound := 1 / math.Sqrt(float64(in))
	for i := range l.w {
		l.w[i] = float32((2*r.Float64() - 1) * bound)
	}
	for i := range l.b {
		l.b[i] = float32((2*r.Float64() - 1) * bound)
	}
	return l
}

func randomInput(r *rand.Rand, n, features int) []float32 {
	x := make([]float32, n*features)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// mlp is the tiny network both end-to-end tests export: 4 -> 8 -> ReLU -> 3.
func mlp() (fc1, fc2 layer) {
	r := rand.New(rand.NewPCG(13, 1))
	return randomLayer(r, 4, 8), randomLayer(r, 8, 3)
}

// forward is the float reference, in float64, with the magnitude of the
// terms summed into each output for the tolerance: float32 evaluation in any
// order, fused or not, stays within a few units of 2^-24 of that sum.
func (l layer) forward(x []float64, n int, relu bool) (y, mag []float64) {
	y, mag = make([]float64, n*l.out), make([]float64, n*l.out)
	for i := 0; i < n; i++ {
		for j := 0; j < l.out; j++ {
			s, m := float64(l.b[j]), math.Abs(float64(l.b[j]))
			for k := 0; k < l.in; k++ {
				p := x[i*l.in+k] * float64(l.w[j*l.in+k])
				s += p
				m += math.Abs(p)
			}
			if relu && s < 0 {
				s = 0
			}
			y[i*l.out+j], mag[i*l.out+j] = s, m
		}
	}
	return y, mag
}

func floats64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// closeTo compares onnxruntime's float32 outputs with a reference, each
// within ulps units of float32 rounding of its magnitude.
func closeTo(t *testing.T, name string, got *npy.Array, want, mag []float64, shape []int, ulps float64) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: no such output", name)
	}
	g, ok := got.Data.([]float32)
	if !ok || fmt.Sprint(got.Shape) != fmt.Sprint(shape) {
		t.Fatalf("%s: %s %v, want float32 %v", name, got.DType(), got.Shape, shape)
	}
	for i := range want {
		tol := ulps * 0x1p-24 * (mag[i] + 1e-30)
		if d := math.Abs(float64(g[i]) - want[i]); d > tol {
			t.Errorf("%s[%d] = %v, want %v (off by %.3g, tolerance %.3g)", name, i, g[i], want[i], d, tol)
		}
	}
}

// mlpModel is Gemm+Relu+Gemm at opset 13 with a dynamic batch dimension.
func mlpModel(fc1, fc2 layer) *onnx.Model {
	m := onnx.NewModel(13)
	m.Metadata["shrink.test"] = "mlp"
	g := m.Graph
	g.AddInput("input", onnx.TypeFloat, onnx.Batch("N", int64(fc1.in)))
	g.AddInitializer(onnx.FloatTensor("fc1.weight", []int64{int64(fc1.out), int64(fc1.in)}, fc1.w))
	g.AddInitializer(onnx.FloatTensor("fc1.bias", []int64{int64(fc1.out)}, fc1.b))
	g.AddInitializer(onnx.FloatTensor("fc2.weight", []int64{int64(fc2.out), int64(fc2.in)}, fc2.w))
	g.AddInitializer(onnx.FloatTensor("fc2.bias", []int64{int64(fc2.out)}, fc2.b))
	g.AddNode("Gemm", []string{"input", "fc1.weight", "fc1.bias"}, []string{"h"}, onnx.AttrInt("transB", 1))
	g.AddNode("Relu", []string{"h"}, []string{"h_relu"})
	g.AddNode("Gemm", []string{"h_relu", "fc2.weight", "fc2.bias"}, []string{"logits"}, onnx.AttrInt("transB", 1))
	g.AddOutput("logits", onnx.TypeFloat, onnx.Batch("N", int64(fc2.out)))
	return m
}

func TestMLPInOnnxruntime(t *testing.T) {
	fc1, fc2 := mlp()
	path := filepath.Join(t.TempDir(), "mlp.onnx")
	if err := mlpModel(fc1, fc2).WriteFile(path); err != nil {
		t.Fatal(err)
	}
	ortest.Check(t, path)
	rt := ortest.Find(t)
	r := rand.New(rand.NewPCG(13, 2))
	for _, n := range []int{1, 5} { // the batch dimension is dynamic
		t.Run(fmt.Sprintf("batch%d", n), func(t *testing.T) {
			x := randomInput(r, n, fc1.in)
			h, _ := fc1.forward(floats64(x), n, true)
			want, mag := fc2.forward(h, n, false)
			// The second layer's magnitude bounds the first's error too,
			// scaled by |W2|, which is below 1 here.
			out := rt.Run(t, path, map[string]*npy.Array{"input": {Shape: []int{n, fc1.in}, Data: x}}, ortest.Options{})
			closeTo(t, "logits", out.Outputs["logits"], want, mag, []int{n, fc2.out}, 16)
		})
	}
}

// qparams is a per-tensor affine quantization to uint8.
type qparams struct {
	scale float32
	zero  uint8
}

// uint8Params covers [lo, hi] (widened to hold 0) with 256 steps.
func uint8Params(lo, hi float32) qparams {
	lo, hi = min(lo, 0), max(hi, 0)
	s := (hi - lo) / 255
	return qparams{scale: s, zero: uint8(math.RoundToEven(float64(-lo / s)))}
}

// quantize is QuantizeLinear: x / scale in float32, rounded half to even,
// plus the zero point, saturated to uint8.
func (q qparams) quantize(x float32) uint8 {
	v := math.RoundToEven(float64(x/q.scale)) + float64(q.zero)
	return uint8(min(max(v, 0), 255))
}

// int8Weights quantizes W [out, in] symmetrically per output channel.
func int8Weights(l layer) (q []int8, scale []float32) {
	q, scale = make([]int8, len(l.w)), make([]float32, l.out)
	for j := 0; j < l.out; j++ {
		var m float32
		for k := 0; k < l.in; k++ {
			m = max(m, float32(math.Abs(float64(l.w[j*l.in+k]))))
		}
		scale[j] = m / 127
		for k := 0; k < l.in; k++ {
			q[j*l.in+k] = int8(math.RoundToEven(float64(l.w[j*l.in+k] / scale[j])))
		}
	}
	return q, scale
}

// qgemm is a layer on quantized operands in integers: the int32 sum of
// (qx - zx)·qw, scaled by sx·sw[j], plus the bias. mag is the terms'
// magnitude for the tolerance.
func qgemm(qx []uint8, x qparams, qw []int8, sw []float32, b []float32, n, in, out int) (y, mag []float64) {
	y, mag = make([]float64, n*out), make([]float64, n*out)
	for i := 0; i < n; i++ {
		for j := 0; j < out; j++ {
			var acc, abs int32
			for k := 0; k < in; k++ {
				p := (int32(qx[i*in+k]) - int32(x.zero)) * int32(qw[j*in+k])
				acc += p
				abs += max(p, -p)
			}
			s := float64(x.scale) * float64(sw[j])
			y[i*out+j] = float64(acc)*s + float64(b[j])
			mag[i*out+j] = float64(abs)*s + math.Abs(float64(b[j]))
		}
	}
	return y, mag
}

// TestQDQInOnnxruntime exports the MLP with int8 weights dequantized per
// output channel (DequantizeLinear, axis 0) and uint8 fake-quantized
// activations (QuantizeLinear then DequantizeLinear), and compares
// onnxruntime, with its QDQ fusions and without, against the same integer
// arithmetic in Go.
func TestQDQInOnnxruntime(t *testing.T) {
	fc1, fc2 := mlp()
	r := rand.New(rand.NewPCG(13, 3))
	const n = 6
	x := randomInput(r, n, fc1.in)

	// Calibrate on this batch: the input's range, then the hidden layer's.
	xq := uint8Params(minmax(x))
	w1, s1 := int8Weights(fc1)
	w2, s2 := int8Weights(fc2)
	qx := make([]uint8, len(x))
	for i, v := range x {
		qx[i] = xq.quantize(v)
	}
	h, _ := qgemm(qx, xq, w1, s1, fc1.b, n, fc1.in, fc1.out)
	hf := make([]float32, len(h))
	for i, v := range h {
		hf[i] = float32(max(v, 0))
	}
	hq := uint8Params(minmax(hf))
	qh := make([]uint8, len(hf))
	for i, v := range hf {
		qh[i] = hq.quantize(v)
	}
	want, mag := qgemm(qh, hq, w2, s2, fc2.b, n, fc2.in, fc2.out)

	m := onnx.NewModel(13)
	g := m.Graph
	g.AddInput("input", onnx.TypeFloat, onnx.Batch("N", int64(fc1.in)))
	scalar := func(name string, q qparams) {
		g.AddInitializer(onnx.FloatTensor(name+".scale", nil, []float32{q.scale}))
		g.AddInitializer(onnx.Uint8Tensor(name+".zero_point", nil, []uint8{q.zero}))
	}
	weights := func(name string, l layer, q []int8, s []float32) {
		g.AddInitializer(onnx.Int8Tensor(name+".weight_q", []int64{int64(l.out), int64(l.in)}, q))
		g.AddInitializer(onnx.FloatTensor(name+".weight_scale", []int64{int64(l.out)}, s))
		g.AddInitializer(onnx.Int8Tensor(name+".weight_zero_point", []int64{int64(l.out)}, make([]int8, l.out)))
		g.AddInitializer(onnx.FloatTensor(name+".bias", []int64{int64(l.out)}, l.b))
		g.AddNode("DequantizeLinear", []string{name + ".weight_q", name + ".weight_scale", name + ".weight_zero_point"}, []string{name + ".weight"}, onnx.AttrInt("axis", 0))
	}
	fakeQuant := func(in, out, q string) {
		g.AddNode("QuantizeLinear", []string{in, q + ".scale", q + ".zero_point"}, []string{in + "_q"})
		g.AddNode("DequantizeLinear", []string{in + "_q", q + ".scale", q + ".zero_point"}, []string{out})
	}
	scalar("input", xq)
	scalar("h", hq)
	weights("fc1", fc1, w1, s1)
	weights("fc2", fc2, w2, s2)
	fakeQuant("input", "input_dq", "input")
	g.AddNode("Gemm", []string{"input_dq", "fc1.weight", "fc1.bias"}, []string{"h"}, onnx.AttrInt("transB", 1))
	g.AddNode("Relu", []string{"h"}, []string{"h_relu"})
	fakeQuant("h_relu", "h_dq", "h")
	g.AddNode("Gemm", []string{"h_dq", "fc2.weight", "fc2.bias"}, []string{"logits"}, onnx.AttrInt("transB", 1))
	g.AddOutput("logits", onnx.TypeFloat, onnx.Batch("N", int64(fc2.out)))
	path := filepath.Join(t.TempDir(), "mlp_qdq.onnx")
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	ortest.Check(t, path)

	rt := ortest.Find(t)
	for _, opt := range []string{"all", "disabled"} {
		t.Run(opt, func(t *testing.T) {
			out := rt.Run(t, path, map[string]*npy.Array{"input": {Shape: []int{n, fc1.in}, Data: x}}, ortest.Options{Opt: opt})
			closeTo(t, "logits", out.Outputs["logits"], want, mag, []int{n, fc2.out}, 16)
		})
	}
}

func minmax(x []float32) (lo, hi float32) {
	lo, hi = x[0], x[0]
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// BenchmarkOnnxruntimeMLP times the MLP in onnxruntime on one thread:
// latency at batch 1, throughput at batch 256. One run.js call makes b.N
// timed runs (after a warmup); ns/op is onnxruntime's mean per run, without
// node's start-up.
func BenchmarkOnnxruntimeMLP(b *testing.B) {
	fc1, fc2 := mlp()
	path := filepath.Join(b.TempDir(), "mlp.onnx")
	if err := mlpModel(fc1, fc2).WriteFile(path); err != nil {
		b.Fatal(err)
	}
	rt := ortest.Find(b)
	r := rand.New(rand.NewPCG(13, 4))
	for _, n := range []int{1, 256} {
		x := &npy.Array{Shape: []int{n, fc1.in}, Data: randomInput(r, n, fc1.in)}
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			res := rt.Run(b, path, map[string]*npy.Array{"input": x}, ortest.Options{Runs: b.N, Warmup: 10})
			b.ReportMetric(res.Timing.MeanMS*1e6, "ns/op")
			b.ReportMetric(res.Timing.MedianMS*1e3, "median-µs/run")
			b.ReportMetric(res.Timing.ItemsPerSecond, "items/s")
		})
	}
}
