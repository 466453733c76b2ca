package quantize_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// oracleArch is the model of ../shared/oracle/mlp_s1.safetensors.
var oracleArch = arch.Spec{Arch: "mlp", Inputs: 6, Hidden: []int{8, 12}, Classes: 5}

func oraclePath(name string) string                         { return testkit.OraclePath(name) }
func readOracle(t *testing.T, name string) *checkpoint.File { return testkit.Oracle(t, name) }

func decode(t *testing.T, typ string, raw map[string]any) stages.Config {
	return testkit.Decode(t, typ, raw)
}

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

// saveAndLoad writes the model as the runner does and reads it back.
func saveAndLoad(t *testing.T, m *model.Model) (*checkpoint.File, *model.Model) {
	return testkit.SaveAndLoad(t, m)
}

func int8s(t *testing.T, f *checkpoint.File, name string) []int32 { return testkit.Int8s(t, f, name) }

func float32s(t *testing.T, f *checkpoint.File, name string) []float32 {
	return testkit.Floats(t, f, name)
}
