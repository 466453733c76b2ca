package quantize_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// oracleArch is the model of ../shared/oracle/mlp_s1.safetensors.
var oracleArch = arch.Spec{Arch: "mlp", Inputs: 6, Hidden: []int{8, 12}, Classes: 5}

func oraclePath(name string) string { return filepath.Join("..", "..", "testdata", "oracle", name) }

func readOracle(t *testing.T, name string) *checkpoint.File {
	t.Helper()
	f, err := checkpoint.ReadFile(oraclePath(name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// decode builds a stage config from recipe keys as the pipeline does: defaults
// from the registered constructor, then strict decoding.
func decode(t *testing.T, typ string, raw map[string]any) stages.Config {
	t.Helper()
	st, ok := stages.Default.Get(typ)
	if !ok {
		t.Fatalf("stage type %q is not registered", typ)
	}
	cfg := st.New()
	if errs := config.Decode(raw, cfg); len(errs) > 0 {
		t.Fatalf("decoding %v: %v", raw, errs)
	}
	return cfg
}

// rawJSON turns a JSON object (an oracle's recipe metadata) into recipe keys.
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
	t.Helper()
	cfg := data.DefaultConfig()
	cfg.Dataset, cfg.Features, cfg.Classes, cfg.Samples, cfg.BatchSize = data.KindSynthetic, 16, 4, 400, 32
	ds, err := data.Load(cfg, "", 7)
	if err != nil {
		t.Fatal(err)
	}
	return ds, cfg
}

var syntheticArch = arch.Spec{Arch: "mlp", Inputs: 16, Hidden: []int{24, 12}, Classes: 4}

// stageContext runs a stage on input (nil: the recipe's model, fresh from the
// seed) with the given data (nil: none).
func stageContext(id string, spec arch.Spec, input *model.Model, ds *data.Dataset, cfg data.Config) *stages.Context {
	src := rand.NewPCG(42, 1)
	ctx := &stages.Context{
		Context: context.Background(), ID: id, Type: id, Log: zerolog.Nop(),
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
	t.Helper()
	f, err := m.ToFile(map[string]string{"stage": "test"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := checkpoint.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	read, err := checkpoint.Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	back, err := model.FromFile(read, nil)
	if err != nil {
		t.Fatal(err)
	}
	return read, back
}

func int8s(t *testing.T, f *checkpoint.File, name string) []int32 {
	t.Helper()
	tn, ok := f.Get(name)
	if !ok {
		t.Fatalf("no %s", name)
	}
	v, err := tn.Int8s()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

func float32s(t *testing.T, f *checkpoint.File, name string) []float32 {
	t.Helper()
	tn, ok := f.Get(name)
	if !ok {
		t.Fatalf("no %s", name)
	}
	v, err := tn.Float32s()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}
