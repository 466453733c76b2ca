package bench

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
	"github.com/shrink-ml/shrink/stages"
	_ "github.com/shrink-ml/shrink/stages/all"
)

var archs = []struct {
	name string
	spec arch.Spec
}{
	{"mlp", arch.Spec{Arch: "mlp", Inputs: 784, Hidden: []int{300, 100}, Classes: 10}},
	{"lenet5", arch.Spec{Arch: "lenet5", Classes: 10}},
}

// loaded holds each dataset the benchmarks read, by name, loaded once per
// process: every benchmark function and sub-benchmark shares it.
var loaded sync.Map // name -> *loadOnce

type loadOnce struct {
	once sync.Once
	ds   *data.Dataset
	err  error
}

// load is the dataset cfg describes, read on first use; a benchmark
// without it (what names it) is skipped.
func load(b *testing.B, what string, cfg data.Config) *data.Dataset {
	b.Helper()
	v, _ := loaded.LoadOrStore(what, &loadOnce{})
	l := v.(*loadOnce)
	l.once.Do(func() { l.ds, l.err = data.Load(cfg, "", 0) })
	if l.err != nil {
		b.Skipf("%s not available: %v", what, l.err)
	}
	return l.ds
}

func loadMNIST(b *testing.B) *data.Dataset {
	b.Helper()
	return load(b, "MNIST", data.DefaultConfig())
}

// loadSeqMNIST is MNIST in the sequence layout: 28 steps of 28 pixels.
func loadSeqMNIST(b *testing.B) *data.Dataset {
	b.Helper()
	cfg := data.DefaultConfig()
	cfg.Layout = data.LayoutSequence
	return load(b, "MNIST (sequence layout)", cfg)
}

// threads sets the GEMM's threads for a benchmark from SHRINK_THREADS (default 1,
// the one-core comparison).
func threads(b *testing.B) {
	n := 1
	if s := os.Getenv("SHRINK_THREADS"); s == "2" {
		n = 2
	}
	gemm.SetThreads(n)
	b.Cleanup(func() { gemm.SetThreads(1) })
}

// BenchmarkTrainStep is one optimizer step (forward, loss, gradients, Adam) at
// batch 128 on MNIST rows, in steady state: allocs/op is what a step allocates.
func BenchmarkTrainStep(b *testing.B) {
	ds := loadMNIST(b)
	for _, a := range archs {
		b.Run(a.name, func(b *testing.B) {
			benchTrainStep(b, a.spec, model.DefaultOptimizer(), ds.Train)
		})
	}
}

// benchTrainStep times one optimizer step of a fresh spec (seeded) at batch
// 128 in steady state: the first step, which allocates the graph's buffers,
// is not timed, so allocs/op is what a step allocates. The batch is train's
// first one, or seeded normal inputs with labels i mod classes when train is
// nil (the step's work does not depend on the values).
func benchTrainStep(b *testing.B, spec arch.Spec, optimizer model.OptimizerConfig, train *data.Split) {
	b.Helper()
	threads(b)
	m := model.MustNew(spec, rand.New(rand.NewPCG(1, 1)))
	net, err := model.Build(m, model.NetOptions{Batch: 128, Mode: model.ModeTrain})
	if err != nil {
		b.Fatal(err)
	}
	opt, err := model.NewOptimizer(optimizer, net.Params())
	if err != nil {
		b.Fatal(err)
	}
	if train != nil {
		x, y := train.Batch(0, 128)
		copy(net.X, x)
		for i, l := range y {
			net.Labels[i] = float32(l)
		}
	} else {
		fill(net.X)
		for i := range net.Labels {
			net.Labels[i] = float32(i % m.Graph.Classes)
		}
	}
	step := func() {
		if err := net.Run(); err != nil {
			b.Fatal(err)
		}
		opt.Step(net.Params())
	}
	step()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step()
	}
}

// BenchmarkEpoch is one full MNIST epoch (469 steps of 128, the last one short),
// shuffling included, as the train stage runs it.
func BenchmarkEpoch(b *testing.B) {
	ds := loadMNIST(b)
	for _, a := range archs {
		b.Run(a.name, func(b *testing.B) {
			threads(b)
			m := model.MustNew(a.spec, rand.New(rand.NewPCG(1, 1)))
			opt := model.TrainOptions{Epochs: 1, BatchSize: 128, Shuffle: true, Optimizer: model.DefaultOptimizer()}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := model.Train(context.Background(), m, ds.Train, opt, rand.New(rand.NewPCG(2, uint64(i)))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkForward is inference at batch 1 and batch 1000 (one call of the
// compiled graph, the input already in place).
func BenchmarkForward(b *testing.B) {
	ds := loadMNIST(b)
	for _, a := range archs {
		for _, bs := range []int{1, 1000} {
			b.Run(a.name+"/batch="+strconv.Itoa(bs), func(b *testing.B) {
				threads(b)
				m := model.MustNew(a.spec, rand.New(rand.NewPCG(1, 1)))
				net, err := model.Build(m, model.NetOptions{Batch: bs, Mode: model.ModeEval})
				if err != nil {
					b.Fatal(err)
				}
				x, _ := ds.Test.Batch(0, bs)
				copy(net.X, x)
				if err := net.Run(); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := net.Run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkNoopRerun times `shrink run recipes/quickstart.yaml` when everything
// is stored: load and validate the recipe, fingerprint the data, verify the
// checkpoint, write run.json. The first (real) run happens before the timer.
func BenchmarkNoopRerun(b *testing.B) {
	loadMNIST(b)
	dir := b.TempDir()
	run := func() *runner.Manifest {
		r, err := pipeline.Load(filepath.Join("..", "recipes", "quickstart.yaml"), stages.Default, pipeline.Options{})
		if err != nil {
			b.Fatal(err)
		}
		man, err := runner.New(stages.Default, r, runner.Options{RunDir: filepath.Join(dir, "quickstart"), Log: zerolog.Nop()}).Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		return man
	}
	run()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if man := run(); man.Stages[0].Status != "cached" {
			b.Fatalf("rerun status %s, want cached", man.Stages[0].Status)
		}
	}
}
