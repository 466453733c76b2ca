package bench

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
)

func loadFashion(b *testing.B) *data.Dataset {
	b.Helper()
	cfg := data.DefaultConfig()
	cfg.Dataset = data.KindFashionMNIST
	return load(b, "Fashion-MNIST", cfg)
}

// resnet20 and resnetOpt are recipes/resnet-fashion.yaml's model and optimizer.
var resnet20 = arch.Spec{Arch: "resnet", Depth: 20, Width: 16, Classes: 10, Input: []int{1, 28, 28}}

func resnetOpt() model.OptimizerConfig {
	return model.OptimizerConfig{Name: "sgd", LR: 0.1, Momentum: 0.9, WeightDecay: 5e-4, LRDecay: 0.5}
}

// BenchmarkResNet trains recipes/resnet-fashion.yaml's ResNet-20 on
// Fashion-MNIST: "step" is one SGD step at batch 128 in steady state (allocs/op
// is what a step allocates), "epoch" one shuffled pass over the 60,000 training
// images (469 steps, the last one short) as the train stage runs it. Not
// matched by bench/compare's default pattern: an epoch takes minutes; run
// `go run ./bench/compare -bench ResNet -only ResNet -rounds 1`.
func BenchmarkResNet(b *testing.B) {
	ds := loadFashion(b)
	b.Run("step", func(b *testing.B) {
		benchTrainStep(b, resnet20, resnetOpt(), ds.Train)
	})
	b.Run("epoch", func(b *testing.B) {
		threads(b)
		m := model.MustNew(resnet20, rand.New(rand.NewPCG(1, 1)))
		opt := model.TrainOptions{Epochs: 1, BatchSize: 128, Shuffle: true, Optimizer: resnetOpt()}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := model.Train(context.Background(), m, ds.Train, opt, rand.New(rand.NewPCG(2, uint64(i)))); err != nil {
				b.Fatal(err)
			}
		}
	})
}
