package lowrank

import (
	"context"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
)

// TestGradientsReachBothFactors checks the training graph of a factored model:
// both factors of a linear and of a conv layer get gradients, and they match
// central finite differences of the loss.
func TestGradientsReachBothFactors(t *testing.T) {
	for _, tc := range []struct {
		spec  arch.Spec
		layer string
		k     int
	}{
		{arch.Spec{Arch: "mlp", Inputs: 12, Hidden: []int{10}, Classes: 4}, "fc1", 3},
		{arch.Spec{Arch: "lenet5", Classes: 10}, "conv2", 4},
	} {
		t.Run(tc.spec.Arch+"/"+tc.layer, func(t *testing.T) {
			m := randomModel(tc.spec, 5)
			factorExactly(t, m.Layer(tc.layer), tc.k)
			net, err := model.Build(m, model.NetOptions{Batch: 4, Mode: model.ModeTrain})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(6, 6))
			for i := range net.X {
				net.X[i] = float32(rng.NormFloat64())
			}
			copy(net.Labels, []float32{0, 1, 2, 3})
			loss := func() float64 {
				t.Helper()
				if err := net.Run(); err != nil {
					t.Fatal(err)
				}
				return net.LastLoss().Loss
			}
			loss()
			grads := map[string][]float32{}
			for _, p := range net.Params() {
				grads[p.Name] = slices.Clone(p.Grad())
			}
			for _, name := range []string{tc.layer + ".0.weight", tc.layer + ".1.weight"} {
				g, ok := grads[name]
				if !ok {
					t.Fatalf("%s is not a trainable parameter (have %v)", name, keys(grads))
				}
				if top := g[largest(g, 1)[0]]; math.Abs(float64(top)) < 1e-6 {
					t.Fatalf("%s gets no gradient (largest %g)", name, top)
				}
				w := weightNamed(m, name)
				for _, i := range largest(g, 4) {
					const eps = 1e-3
					x := w.Data[i]
					w.Data[i] = x + eps
					up := loss()
					w.Data[i] = x - eps
					down := loss()
					w.Data[i] = x
					fd := (up - down) / (2 * eps)
					if math.Abs(fd-float64(g[i])) > 1e-3+0.02*math.Abs(fd) {
						t.Errorf("%s[%d]: gradient %g, finite difference %g", name, i, g[i], fd)
					}
				}
			}
		})
	}
}

// TestFactoredModelTrains fine-tunes a factored model on synthetic data: the
// loss falls, both factors move, and the layer stays factored.
func TestFactoredModelTrains(t *testing.T) {
	ds, err := data.Load(data.Config{Dataset: data.KindSynthetic, BatchSize: 32, EvalBatchSize: 100, Features: 16, Classes: 4, Samples: 400}, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	m := randomModel(arch.Spec{Arch: "mlp", Inputs: 16, Hidden: []int{24}, Classes: 4}, 7)
	if _, err := factorLayer(m.Layer("fc1"), rule{rank: 4}, nopLog); err != nil {
		t.Fatal(err)
	}
	l := m.Layer("fc1")
	before := [][]float32{slices.Clone(l.Weights[0].Data), slices.Clone(l.Weights[1].Data)}
	ctx := context.Background()
	start, err := model.Evaluate(ctx, m, ds.Train, 100)
	if err != nil {
		t.Fatal(err)
	}
	opt := model.TrainOptions{Epochs: 3, BatchSize: 32, Shuffle: true, Optimizer: model.DefaultOptimizer()}
	opt.Optimizer.LR = 0.01
	if err := model.Train(ctx, m, ds.Train, opt, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	end, err := model.Evaluate(ctx, m, ds.Train, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !(end.Loss < 0.7*start.Loss) {
		t.Errorf("training loss %g -> %g: want a drop of at least 30%%", start.Loss, end.Loss)
	}
	if l.Rank != 4 || len(l.Weights) != 2 {
		t.Fatalf("fc1 is no longer factored at rank 4: rank %d, %d weights", l.Rank, len(l.Weights))
	}
	for i, w := range l.Weights {
		if slices.Equal(w.Data, before[i]) {
			t.Errorf("%s did not change while training", w.Name)
		}
	}
	t.Logf("loss %.4f -> %.4f, accuracy %.3f -> %.3f", start.Loss, end.Loss, start.Accuracy, end.Accuracy)
}

func weightNamed(m *model.Model, name string) *model.Weight {
	for _, l := range m.WeightLayers() {
		for _, w := range l.Weights {
			if w.Name == name {
				return w
			}
		}
	}
	return nil
}

// largest returns the indices of the n largest |g_i|.
func largest(g []float32, n int) []int {
	idx := make([]int, len(g))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		return -cmpAbs(g[a], g[b])
	})
	return idx[:min(n, len(idx))]
}

func cmpAbs(a, b float32) int {
	x, y := math.Abs(float64(a)), math.Abs(float64(b))
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// TestQuantizedFactorsTrain trains a factored, quantized layer as QAT would:
// both factors are fake-quantized while training, come back on their grids, and
// the loss falls.
func TestQuantizedFactorsTrain(t *testing.T) {
	ds, err := data.Load(data.Config{Dataset: data.KindSynthetic, BatchSize: 32, EvalBatchSize: 100, Features: 16, Classes: 4, Samples: 400}, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	m := randomModel(arch.Spec{Arch: "mlp", Inputs: 16, Hidden: []int{24}, Classes: 4}, 8)
	l := m.Layer("fc1")
	l.Quant = &quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}
	m.Requantize()
	if _, err := factorLayer(l, rule{rank: 4}, nopLog); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start, _ := model.Evaluate(ctx, m, ds.Train, 100)
	opt := model.TrainOptions{Epochs: 3, BatchSize: 32, Optimizer: model.DefaultOptimizer()}
	opt.Optimizer.LR = 0.01
	if err := model.Train(ctx, m, ds.Train, opt, rand.New(rand.NewPCG(2, 2))); err != nil {
		t.Fatal(err)
	}
	end, _ := model.Evaluate(ctx, m, ds.Train, 100)
	if !(end.Loss < 0.7*start.Loss) {
		t.Errorf("training loss %g -> %g: want a drop of at least 30%%", start.Loss, end.Loss)
	}
	if l.Rank != 4 || l.Quant == nil {
		t.Fatalf("fc1: rank %d, quant %v", l.Rank, l.Quant)
	}
	for _, w := range l.Weights {
		snapped := make([]float32, len(w.Data))
		l.Quant.FakeQuantize(w.Data, *w.QParams, snapped)
		if !slices.Equal(snapped, w.Data) {
			t.Errorf("%s is off its quantization grid after training", w.Name)
		}
	}
}
