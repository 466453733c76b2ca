package prune

import (
	"math/rand/v2"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

var oracleSpec = testkit.OracleSpec

// synthetic is a small data section: seeded Gaussian blobs.
func synthetic(features, classes int) *data.Config {
	c := testkit.Synthetic(features, classes, 400, 32)
	return &c
}

// newContext is what the runner hands a stage, without the runner: the input
// model, a seeded random source, a folder, and the data when dc is not nil.
func newContext(t testing.TB, in *model.Model, dc *data.Config) *stages.Context {
	t.Helper()
	var ds *data.Dataset
	if dc != nil {
		ds = testkit.Load(t, *dc)
	}
	return testkit.Context(t, "prune", in.Spec, in, ds, dc, 7)
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
	return model.MustNew(arch.Spec{Arch: "mlp", Inputs: inputs, Hidden: hidden, Classes: classes}, rand.New(rand.NewPCG(3, 4)))
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
