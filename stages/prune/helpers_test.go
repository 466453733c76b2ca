package prune

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// oracleDir holds the PyTorch reference vectors (copied from the shared oracle).
var oracleDir = filepath.Join("..", "..", "testdata", "oracle")

// oracleSpec is the architecture of mlp_s1.safetensors: Linear(6, 8), Linear(8,
// 12), Linear(12, 5).
var oracleSpec = arch.Spec{Arch: "mlp", Inputs: 6, Hidden: []int{8, 12}, Classes: 5}

// oracleModel loads the oracle's input model.
func oracleModel(t *testing.T) *model.Model {
	t.Helper()
	m, err := model.Load(filepath.Join(oracleDir, "mlp_s1.safetensors"), &oracleSpec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readOracle(t *testing.T, name string) *checkpoint.File {
	t.Helper()
	f, err := checkpoint.ReadFile(filepath.Join(oracleDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func floats(t *testing.T, f *checkpoint.File, name string) []float32 {
	t.Helper()
	tt, ok := f.Get(name)
	if !ok {
		t.Fatalf("oracle has no %s", name)
	}
	v, err := tt.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// synthetic is a small data section: seeded Gaussian blobs.
func synthetic(features, classes int) *data.Config {
	c := data.DefaultConfig()
	c.Dataset = data.KindSynthetic
	c.Features, c.Classes, c.Samples = features, classes, 400
	c.BatchSize = 32
	return &c
}

// newContext is what the runner hands a stage, without the runner: the input
// model, a seeded random source, a folder, and the data when dc is not nil.
func newContext(t testing.TB, in *model.Model, dc *data.Config) *stages.Context {
	t.Helper()
	src := stages.Stream(7, "stage:prune")
	ctx := &stages.Context{
		Context: context.Background(), ID: "prune", Type: "prune", Log: zerolog.Nop(),
		Source: src, Rand: rand.New(src), Seed: 7, Spec: in.Spec, Input: in,
		Dir: t.TempDir(),
	}
	if dc != nil {
		var once sync.Once
		var ds *data.Dataset
		var err error
		ctx.Data = func() (*data.Dataset, error) {
			once.Do(func() { ds, err = data.Load(*dc, ".", 7) })
			return ds, err
		}
		ctx.DataConfig = dc
	}
	return ctx
}

// run decodes a config from raw recipe keys and runs it on ctx.
func run(t testing.TB, ctx *stages.Context, raw map[string]any) (*stages.Result, error) {
	t.Helper()
	c := decode(t, raw)
	return c.Run(ctx)
}

func decode(t testing.TB, raw map[string]any) *Config {
	t.Helper()
	c := New()
	if errs := decodeInto(raw, c); errs != nil {
		t.Fatalf("decode %v: %v", raw, errs)
	}
	return c
}

// mlp builds a model with PyTorch's default init from a fixed seed.
func mlp(inputs int, hidden []int, classes int) *model.Model {
	return model.New(arch.Spec{Arch: "mlp", Inputs: inputs, Hidden: hidden, Classes: classes}, rand.New(rand.NewPCG(3, 4)))
}

// zeros lists the flat indices of exact zeros.
func zeros(v []float32) []int {
	var out []int
	for i, x := range v {
		if x == 0 {
			out = append(out, i)
		}
	}
	return out
}

// decodeInto decodes raw recipe keys strictly, as the pipeline does.
func decodeInto(raw map[string]any, c *Config) error {
	return config.Decode(raw, c).Err()
}
