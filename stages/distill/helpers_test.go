package distill

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// blobs is a small synthetic dataset: 8 features, 4 classes, 800 training rows.
func blobs(t *testing.T) (*data.Dataset, *data.Config) {
	t.Helper()
	cfg := data.DefaultConfig()
	cfg.Dataset, cfg.BatchSize, cfg.EvalBatchSize = data.KindSynthetic, 32, 100
	cfg.Features, cfg.Classes, cfg.Samples = 8, 4, 1000
	ds, err := data.Load(cfg, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	return ds, &cfg
}

// recipeSpec is the recipe's model in these tests.
var recipeSpec = arch.Spec{Arch: "mlp", Inputs: 8, Hidden: []int{16}, Classes: 4}

// newContext is what the runner would hand the stage "distill" of a recipe with
// seed 1 over the blobs: cacheDir and stateDir may be shared between calls to
// play reruns.
func newContext(t *testing.T, ds *data.Dataset, cfg *data.Config, cacheDir, stateDir string) (*stages.Context, *testkit.LogBuffer) {
	t.Helper()
	logs := &testkit.LogBuffer{}
	src := stages.Stream(1, "stage:distill")
	return &stages.Context{
		Context: context.Background(), ID: "distill",
		Log:  zerolog.New(logs),
		Rand: rand.New(src), Source: src, Seed: 1, Spec: recipeSpec,
		Inputs: map[string]*model.Model{}, InputMetrics: map[string]map[string]any{},
		InputDigests: map[string]string{}, Refs: map[string]string{}, FileDigests: map[string]string{},
		Data: func() (*data.Dataset, error) { return ds, nil }, DataConfig: cfg,
		DataFingerprint: "blobs-fingerprint", CacheDir: cacheDir, StateDir: stateDir, Dir: t.TempDir(),
	}, logs
}

// withTeacher hands ctx a teacher stage "train" the way the runner does.
func withTeacher(ctx *stages.Context, m *model.Model, digest string) {
	ctx.Inputs["train"] = m
	ctx.InputDigests["train"] = digest
	ctx.Refs["teacher"] = "train"
}

// trainedTeacher is the recipe's model trained on the blobs with labels.
func trainedTeacher(t *testing.T, ds *data.Dataset, epochs int) *model.Model {
	t.Helper()
	m := model.MustNew(recipeSpec, rand.New(rand.NewPCG(9, 9)))
	err := model.Train(context.Background(), m, ds.Train, model.TrainOptions{
		Epochs: epochs, BatchSize: 32, Shuffle: true, Optimizer: fastAdam(),
	}, rand.New(rand.NewPCG(10, 10)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func fastAdam() model.OptimizerConfig {
	o := model.DefaultOptimizer()
	o.LR = 0.01
	return o
}

func accuracy(t *testing.T, m *model.Model, s *data.Split) float64 {
	t.Helper()
	r, err := model.Evaluate(context.Background(), m, s, 100)
	if err != nil {
		t.Fatal(err)
	}
	return r.Accuracy
}

// decode decodes a stage's keys as the pipeline does, from the registered
// type's defaults.
func decode(t *testing.T, raw map[string]any) (*Config, error) {
	t.Helper()
	typ, ok := stages.Default.Get("distill")
	if !ok {
		t.Fatal("distill is not registered")
	}
	c := typ.New().(*Config)
	return c, config.Decode(raw, c).Err()
}

// mustFresh is the recipe's fresh model.
func mustFresh(t testing.TB, ctx *stages.Context) *model.Model {
	t.Helper()
	m, err := ctx.Fresh()
	if err != nil {
		t.Fatal(err)
	}
	return m
}
