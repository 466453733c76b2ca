package bench

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/export"
	"github.com/shrink-ml/shrink/export/onnxexport"
	"github.com/shrink-ml/shrink/infer"
	"github.com/shrink-ml/shrink/internal/npy"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
)

// The inference benchmarks (BenchmarkInfer) time package infer's Predict,
// what shrink eval, predict, bench and Go programs run, on the models of
// issue 20's targets; bench/torch_bench.py times the same names in PyTorch.
//
//   - lenet300-float: LeNet-300-100 (784-300-100-10), float32.
//   - lenet300-dc: Deep Compression's LeNet-300-100: fc1 keeps 8% of its
//     weights, fc2 9%, fc3 26% (recipes/deep-compression-lenet300.yaml's
//     rates), the weights on a 4-bit grid. The pruning here is random, which
//     spreads the nonzeros evenly (the recipe's magnitude pruning empties
//     whole input columns, which the sparse format skips); SHRINK_BENCH_DC
//     names a real checkpoint (the recipe's qat stage) to time instead.
//   - lenet300-int8: dynamically quantized as torch.ao's quantize_dynamic
//     (int8 per-channel weights, reduce_range activations per batch):
//     recipes/quantize-int8.yaml's quantize stage.
//   - lenet300-int8full: the same with full-range (0..255) dynamic inputs,
//     recipes/quantize-int8.yaml's default form (PyTorch times its
//     quantize_dynamic model for it: it has one dynamic form).
//   - lenet300-static: statically quantized as recipes/quantize-static.yaml
//     (int8 per-channel weights, 8-bit inputs calibrated with MinMax on
//     1280 MNIST training images): PyTorch's FX static quantization, and
//     onnxruntime's QDQ (QGemm) of the export.
//   - resnet20-float: the CIFAR ResNet-20 (resnet preset: depth 20, width
//     16) on 3×32×32 inputs.
//   - resnet20-int8: the same with int8 per-channel weights and static 8-bit
//     activations (recipe mode: static): convolutions and fc on integer
//     kernels, batch norms, ReLUs and the residual adds in float (shrink
//     does not fold batch norms into the convolutions; PyTorch's FX
//     quantization does, and keeps activations quantized between layers).
var (
	lenet300Spec = arch.Spec{Arch: "mlp", Inputs: 784, Hidden: arch.Widths{300, 100}, Classes: 10}
	resnet20Spec = arch.Spec{Arch: "resnet", Depth: 20, Width: 16, Input: arch.Shape{3, 32, 32}, Classes: 10}
)

var inferModels = []string{"lenet300-float", "lenet300-dc", "lenet300-int8", "lenet300-int8full", "lenet300-static", "resnet20-float", "resnet20-int8"}

func inferModel(b *testing.B, name string) *model.Model {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	switch name {
	case "lenet300-float":
		return model.MustNew(lenet300Spec, rng)
	case "lenet300-dc":
		if path := os.Getenv("SHRINK_BENCH_DC"); path != "" {
			m, err := export.LoadModel(path, nil)
			if err != nil {
				b.Fatal(err)
			}
			return m
		}
		m := model.MustNew(lenet300Spec, rng)
		for _, l := range m.WeightLayers() {
			keep := map[string]float64{"fc1": 0.08, "fc2": 0.09, "fc3": 0.26}[l.Name]
			w := l.Weights[0].Data
			for i := range w {
				if rng.Float64() >= keep {
					w[i] = 0
				}
			}
			l.Quant = &quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerTensor}
		}
		m.Requantize()
		return m
	case "lenet300-int8":
		m := model.MustNew(lenet300Spec, rng)
		for _, l := range m.WeightLayers() {
			l.Quant = &quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
			l.Input = &model.ActQuant{Mode: "dynamic", Spec: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor, ReduceRange: true}}
		}
		m.Requantize()
		return m
	case "lenet300-int8full", "lenet300-static":
		m := model.MustNew(lenet300Spec, rng)
		for _, l := range m.WeightLayers() {
			l.Quant = &quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
			l.Input = &model.ActQuant{Mode: "dynamic", Spec: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}}
			if name == "lenet300-static" {
				l.Input.Mode = "static"
			}
		}
		if name == "lenet300-static" {
			calib := loadMNIST(b).Train.Slice(0, 1280)
			if err := model.Calibrate(context.Background(), m, calib, model.CalibrateOptions{BatchSize: 128}); err != nil {
				b.Fatal(err)
			}
		}
		m.Requantize()
		return m
	case "resnet20-float":
		return model.MustNew(resnet20Spec, rng)
	case "resnet20-int8":
		m := model.MustNew(resnet20Spec, rng)
		for _, l := range m.WeightLayers() {
			l.Quant = &quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
			spec := quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}
			scale, zp := spec.ParamsOf(-4, 4)
			l.Input = &model.ActQuant{Mode: "static", Spec: spec, RangeMin: -4, RangeMax: 4,
				Params: quant.Params{Scale: []float32{scale}, ZeroPoint: []int32{zp}}}
		}
		m.Requantize()
		return m
	}
	b.Fatalf("no model %s", name)
	return nil
}

// BenchmarkInfer is one Predict call of a batch, in steady state (the
// graph compiled, nothing allocated), on MNIST test images for LeNet and
// seeded random images for ResNet.
func BenchmarkInfer(b *testing.B) {
	for _, name := range inferModels {
		for _, bs := range []int{1, 256} {
			b.Run(name+"/batch="+strconv.Itoa(bs), func(b *testing.B) {
				threads(b)
				m := inferModel(b, name)
				r, err := infer.New(m, infer.Options{MaxBatch: bs, Sizes: 1})
				if err != nil {
					b.Fatal(err)
				}
				x := make([]float32, bs*r.InputSize())
				if name[:6] == "lenet3" {
					xs, _ := loadMNIST(b).Test.Batch(0, bs)
					copy(x, xs)
				} else {
					rng := rand.New(rand.NewPCG(2, 2))
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
				}
				dst := make([]float32, bs*r.Classes())
				if err := r.PredictInto(dst, x, bs); err != nil {
					b.Fatal(err)
				}
				for _, l := range r.Layers(bs) {
					if l.Kernel != "" && b.N == 1 {
						b.Logf("%s: %s (density %.3f)", l.Name, l.Kernel, l.Density)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if err := r.PredictInto(dst, x, bs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkInferORT times the same models exported to ONNX (shrink export
// --format onnx --int-bias: QDQ for the static int8 models, DynamicQuantizeLinear and
// MatMulInteger for the dynamic LeNet) in onnxruntime (tools/ort, CPU, one
// intra-op thread); ns/op is the median run. onnxruntime has no kernel for
// unstructured sparsity, so lenet300-dc runs as a dense float model there.
// Skips without onnxruntime (internal/ortest says how to install it).
func BenchmarkInferORT(b *testing.B) {
	rt := ortest.Find(b)
	for _, name := range inferModels {
		m := inferModel(b, name)
		// IntBias: every static layer's bias in its Gemm or Conv node, so
		// onnxruntime runs it as one integer kernel (QGemm, QLinearConv),
		// its fastest form; the default export keeps a bias apart, in
		// float, where rounding it to INT32 could move outputs (ONNX.md).
		res, err := onnxexport.Export(m, onnxexport.Options{IntBias: true})
		if err != nil {
			b.Fatal(err)
		}
		path := filepath.Join(b.TempDir(), name+".onnx")
		if err := res.Model.WriteFile(path); err != nil {
			b.Fatal(err)
		}
		for _, bs := range []int{1, 256} {
			b.Run(name+"/batch="+strconv.Itoa(bs), func(b *testing.B) {
				shape := append([]int{bs}, m.Spec.InputShape()...)
				data := make([]float32, bs*shapeSize(m.Spec.InputShape()))
				rng := rand.New(rand.NewPCG(2, 2))
				for i := range data {
					data[i] = float32(rng.NormFloat64())
				}
				x := &npy.Array{Shape: shape, Data: data}
				runs := 300
				if bs > 1 {
					runs = 20
				}
				r := rt.Run(b, path, map[string]*npy.Array{"input": x}, ortest.Options{Threads: 1, Runs: runs, Warmup: 5})
				b.ReportMetric(r.Timing.MedianMS*1e6, "ns/op")
			})
		}
	}
}

func shapeSize(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}
