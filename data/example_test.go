package data_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/shrink-ml/shrink/data"
)

func Example() {
	cfg := data.DefaultConfig()
	cfg.Dataset = "synthetic" // no files needed; "mnist" finds MNIST by itself
	cfg.BatchSize = 300
	cfg.ValidationSplit = 0.1
	ds, err := data.Load(cfg, ".", 42)
	if err != nil {
		panic(err)
	}
	fmt.Println("train", ds.Train.N, "val", ds.Val.N, "test", ds.Test.N, "features", ds.Features, "classes", ds.Classes)

	b := data.NewBatcher(ds.Train, cfg.BatchSize, cfg.Shuffle)
	x := make([]float32, cfg.BatchSize*ds.Features)
	y := make([]int32, cfg.BatchSize)
	rng := rand.New(rand.NewPCG(42, 1))
	b.Epoch(rng)
	for n, ok := b.Next(x, y); ok; n, ok = b.Next(x, y) {
		fmt.Println("batch of", n)
	}
	// Output:
	// train 720 val 80 test 200 features 32 classes 10
	// batch of 300
	// batch of 300
	// batch of 120
}

func ExampleSplit_Batch() {
	cfg := data.DefaultConfig()
	cfg.Dataset = "synthetic"
	ds, _ := data.Load(cfg, "", 1)
	for i := range ds.Test.NumBatches(cfg.EvalBatchSize) {
		x, y := ds.Test.Batch(i, cfg.EvalBatchSize)
		fmt.Println(len(x)/ds.Features, len(y))
	}
	// Output:
	// 200 200
}

// An npy dataset: arrays written by numpy.save, here uint8 images [N, 3, 2, 2]
// normalized per channel as torchvision's Normalize would.
func ExampleLoad_npy() {
	cfg := data.DefaultConfig()
	cfg.Dataset = data.KindNPY
	cfg.Train = &data.Arrays{X: "x_u1_4d.npy", Y: "y4_i8.npy"}
	cfg.Test = &data.Arrays{X: "x_u1_4d.npy", Y: "y4_u1.npy"}
	cfg.Normalize = &data.Normalize{Mean: data.Channels{0.5, 0.4, 0.3}, Std: data.Channels{0.2}}
	ds, err := data.Load(cfg, "testdata/npy", 1)
	if err != nil {
		panic(err)
	}
	fmt.Println("sample shape", ds.Shape, "features", ds.Features, "train", ds.Train.N, "test", ds.Test.N, "labels below", ds.Classes)
	fmt.Printf("first value %.4f\n", ds.Train.X[0]) // pixel 0 of channel 0: (0/255 - 0.5)/0.2
	// Output:
	// sample shape [3 2 2] features 12 train 4 test 4 labels below 4
	// first value -2.5000
}
