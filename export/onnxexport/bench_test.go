package onnxexport

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/npy"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/model"
)

// BenchmarkOnnxruntime times exports of LeNet-300-100, LeNet-5 and the
// Deep Compression LeNet-5 (20-50-500-84) in onnxruntime on one thread:
// float, int8 with calibrated inputs (QDQ) and int8 with dynamic inputs, at
// batch 1 (latency) and 256 (throughput); ns/op is the median run. The
// weights are random: the timings do not depend on them. docs/DEPLOY.md has
// the table for the shipped recipes' trained checkpoints.
func BenchmarkOnnxruntime(b *testing.B) {
	for _, spec := range []arch.Spec{
		{Arch: "mlp", Inputs: 784, Hidden: []int{300, 100}, Classes: 10},
		{Arch: "lenet5", Classes: 10},
		{Arch: "lenet5", Channels: []int{20, 50}, Hidden: []int{500, 84}, Classes: 10},
	} {
		for _, kind := range []string{"float", "static", "dynamic"} {
			rng := rand.New(rand.NewPCG(1, 2))
			m := model.MustNew(spec, rng)
			if kind != "float" {
				quantize(b, m, qspec{int8sym, act8, kind}, split(m.Spec, 64, 7))
			}
			res, err := Export(m, Options{})
			if err != nil {
				b.Fatal(err)
			}
			path := filepath.Join(b.TempDir(), "model.onnx")
			if err := res.Model.WriteFile(path); err != nil {
				b.Fatal(err)
			}
			rt := ortest.Find(b)
			for _, n := range []int{1, 256} {
				s := split(m.Spec, n, 3)
				x := &npy.Array{Shape: append([]int{n}, s.SampleShape()...), Data: s.X}
				b.Run(fmt.Sprintf("%s%v/%s/batch%d", spec.Arch, spec.Channels, kind, n), func(b *testing.B) {
					r := rt.Run(b, path, map[string]*npy.Array{"input": x}, ortest.Options{Runs: max(b.N, 200), Warmup: 20})
					b.ReportMetric(r.Timing.MedianMS*1e6, "ns/op")
					b.ReportMetric(r.Timing.ItemsPerSecond, "items/s")
				})
			}
		}
	}
}
