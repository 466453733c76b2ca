package bench

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/model"
)

// resnets are ResNet-20 on 1x28x28 images, dense and structurally pruned to
// half its multiply-accumulates: testdata/resnet20-fashion-pruned.json is the
// architecture recipes/resnet-fashion-compress.yaml's prune stage writes (its
// checkpoint's arch metadata). Speed does not depend on the weights, so both
// start from fresh ones.
func resnets(b *testing.B) []struct {
	name string
	spec arch.Spec
} {
	b.Helper()
	js, err := os.ReadFile(filepath.Join("testdata", "resnet20-fashion-pruned.json"))
	if err != nil {
		b.Fatal(err)
	}
	pruned, err := arch.Parse(string(js))
	if err != nil {
		b.Fatal(err)
	}
	return []struct {
		name string
		spec arch.Spec
	}{
		{"dense", arch.Spec{Arch: arch.ResNet, Depth: 20, Input: arch.Shape{1, 28, 28}, Classes: 10}},
		{"pruned", pruned},
	}
}

// BenchmarkResNetForward is ResNet-20 inference, dense against pruned, at
// batch 1 and 256 (one call of the compiled eval graph, the input in place);
// it reports MACs per sample.
func BenchmarkResNetForward(b *testing.B) {
	for _, bs := range []int{1, 256} {
		for _, r := range resnets(b) {
			b.Run(r.name+"/batch="+strconv.Itoa(bs), func(b *testing.B) {
				threads(b)
				m := model.MustNew(r.spec, rand.New(rand.NewPCG(1, 1)))
				net, err := model.Build(m, model.NetOptions{Batch: bs, Mode: model.ModeEval})
				if err != nil {
					b.Fatal(err)
				}
				fill(net.X)
				if err := net.Run(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := net.Run(); err != nil {
						b.Fatal(err)
					}
				}
				// After the loop: ResetTimer drops metrics reported before it.
				b.ReportMetric(float64(m.Graph.MACs()), "MACs/sample")
			})
		}
	}
}

// BenchmarkResNetTrainStep is one optimizer step (forward, loss, gradients,
// Adam) of ResNet-20 at batch 128, dense against pruned.
func BenchmarkResNetTrainStep(b *testing.B) {
	for _, r := range resnets(b) {
		b.Run(r.name, func(b *testing.B) {
			benchTrainStep(b, r.spec, model.DefaultOptimizer(), nil)
		})
	}
}

// fill writes seeded normal values, like normalized pixels.
func fill(x []float32) {
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
}
