package model_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
)

// TestFreezeStats checks batch norm freezing (torch.ao's freeze_bn_stats):
// while frozen, a training batch norm normalizes with its running statistics,
// so the training net's logits are the eval net's, and it updates neither them
// nor num_batches_tracked, while its weight keeps learning; before the epoch
// FreezeStats names it trains as usual.
func TestFreezeStats(t *testing.T) {
	spec := arch.Spec{Input: arch.Shape{1, 4, 4}, Classes: 3, Layers: []arch.LayerSpec{
		arch.NewLayer("conv", "conv2d", map[string]any{"out": 3, "kernel": 3, "bias": false}),
		arch.NewLayer("bn", "batchnorm2d", nil),
		arch.NewLayer("", "relu", nil),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc", "linear", map[string]any{"out": 3}),
	}}
	m := model.MustNew(spec, rand.New(rand.NewPCG(1, 1)))
	bn := m.Layer("bn")
	copy(bn.Buffers[0].Data, []float32{0.3, -0.2, 0.1}) // running_mean
	copy(bn.Buffers[1].Data, []float32{0.5, 2, 1.5})    // running_var
	train := randomSplit(40, 16, 3)

	t.Run("frozen logits are eval logits", func(t *testing.T) {
		f := m.Clone()
		f.FreezeStats = map[string]int{"bn": 0}
		net, err := model.Build(f, model.NetOptions{Batch: 8, Mode: model.ModeTrain})
		if err != nil {
			t.Fatal(err)
		}
		copy(net.X, train.X[:8*16])
		for i := range net.Labels {
			net.Labels[i] = float32(train.Y[i])
		}
		// Training sets the switch per epoch; a net built by hand starts
		// unfrozen, so the first run uses the batch's statistics.
		if err := net.Run(); err != nil {
			t.Fatal(err)
		}
		unfrozen := slices.Clone(net.Logits())
		head := &data.Split{X: train.X[:8*16], Y: train.Y[:8], N: 8, Features: 16}
		// The unfrozen run moved the running statistics: eval uses those.
		want, err := model.Logits(context.Background(), f, head, 8)
		if err != nil {
			t.Fatal(err)
		}
		if maxDiff(unfrozen, want) == 0 {
			t.Fatal("batch statistics gave the eval logits: the test cannot tell frozen from not")
		}
		model.FreezeForTest(net, 1)
		if err := net.Run(); err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(net.Logits(), want); d > 1e-6 {
			t.Errorf("frozen training logits differ from eval logits by %g", d)
		}
		// The gradients are the frozen (eval) function's: a central
		// difference of the loss agrees with each parameter's gradient.
		for _, p := range net.Params() {
			grad := slices.Clone(p.Grad())
			for _, i := range []int{0, len(p.Data) - 1} {
				old := p.Data[i]
				const h = 1e-3
				p.Data[i] = old + h
				net.Run()
				up := net.LastLoss().Loss
				p.Data[i] = old - h
				net.Run()
				down := net.LastLoss().Loss
				p.Data[i] = old
				if num := (up - down) / (2 * h); math.Abs(num-float64(grad[i])) > 2e-3*max(1, math.Abs(num)) {
					t.Errorf("%s[%d]: gradient %g, central difference %g", p.Name, i, grad[i], num)
				}
			}
			net.Run()
		}
	})

	t.Run("epochs", func(t *testing.T) {
		f := m.Clone()
		f.FreezeStats = map[string]int{"bn": 1}
		opt := model.TrainOptions{Epochs: 1, BatchSize: 8, Optimizer: model.DefaultOptimizer()}
		if err := model.Train(context.Background(), f, train, opt, rand.New(rand.NewPCG(2, 2))); err != nil {
			t.Fatal(err)
		}
		fb := f.Layer("bn")
		if slices.Equal(fb.Buffers[0].Data, bn.Buffers[0].Data) || fb.Counters[0].Value != 5 {
			t.Fatalf("epoch 1 (before freezing) left the statistics %v, %d batches tracked", fb.Buffers[0].Data, fb.Counters[0].Value)
		}
		mean, tracked, gamma := slices.Clone(fb.Buffers[0].Data), fb.Counters[0].Value, slices.Clone(fb.Params[0].Data)
		opt.StartEpoch, opt.Epochs = 1, 2
		if err := model.Train(context.Background(), f, train, opt, rand.New(rand.NewPCG(2, 3))); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(fb.Buffers[0].Data, mean) || fb.Counters[0].Value != tracked {
			t.Errorf("epoch 2 (frozen) moved the statistics: %v -> %v, tracked %d -> %d", mean, fb.Buffers[0].Data, tracked, fb.Counters[0].Value)
		}
		if slices.Equal(fb.Params[0].Data, gamma) {
			t.Error("the frozen batch norm's weight did not learn")
		}
	})
}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}
