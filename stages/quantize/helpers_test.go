package quantize_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

func rawJSON(t *testing.T, js string) map[string]any {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal([]byte(js), &raw); err != nil {
		t.Fatal(err)
	}
	delete(raw, "type")
	return raw
}

// syntheticData is a small seeded dataset: 16 features, 4 classes, 400 rows
// (320 to train, 80 to test).
func syntheticData(t *testing.T) (*data.Dataset, data.Config) {
	cfg := testkit.Synthetic(16, 4, 400, 32)
	return testkit.Load(t, cfg), cfg
}

var syntheticArch = arch.Spec{Arch: "mlp", Inputs: 16, Hidden: []int{24, 12}, Classes: 4}

// stageContext runs a stage on input (nil: the recipe's model, fresh from the
// seed) with the given data (nil: none).
func stageContext(id string, spec arch.Spec, input *model.Model, ds *data.Dataset, cfg data.Config) *stages.Context {
	src := rand.NewPCG(42, 1)
	ctx := &stages.Context{
		Context: context.Background(), ID: id, Log: zerolog.Nop(),
		Rand: rand.New(src), Source: src, Seed: 42, Spec: spec, Input: input,
		Inputs: map[string]*model.Model{}, InputMetrics: map[string]map[string]any{},
	}
	if ds != nil {
		ctx.Data = func() (*data.Dataset, error) { return ds, nil }
		ctx.DataConfig = &cfg
	}
	return ctx
}

func run(t *testing.T, cfg stages.Config, ctx *stages.Context) *stages.Result {
	t.Helper()
	res, err := cfg.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
