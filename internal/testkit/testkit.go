// Package testkit is what shrink's tests share: the PyTorch oracle vectors, small
// synthetic datasets, a stage context without a runner, and a checkpoint round
// trip. Only tests import it.
package testkit

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

// Root is the repository's root folder, wherever the test runs from.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// OraclePath is a file of the PyTorch vectors copied into testdata/oracle.
func OraclePath(name string) string { return filepath.Join(Root(), "testdata", "oracle", name) }

// OracleSpec is mlp_s1.safetensors' architecture: Linear(6, 8), Linear(8, 12),
// Linear(12, 5), the model every prune, quantization and low-rank vector starts from.
var OracleSpec = arch.Spec{Arch: "mlp", Inputs: 6, Hidden: []int{8, 12}, Classes: 5}

// Oracle reads an oracle file.
func Oracle(t testing.TB, name string) *checkpoint.File {
	t.Helper()
	f, err := checkpoint.ReadFile(OraclePath(name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// OracleModel loads mlp_s1, the oracle's input model.
func OracleModel(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.Load(OraclePath("mlp_s1.safetensors"), &OracleSpec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Floats reads an F32 tensor of a file, failing the test when it is missing.
func Floats(t testing.TB, f *checkpoint.File, name string) []float32 {
	t.Helper()
	tn := tensor(t, f, name)
	v, err := tn.Float32s()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// Int8s reads an I8 tensor as int32s.
func Int8s(t testing.TB, f *checkpoint.File, name string) []int32 {
	t.Helper()
	v, err := tensor(t, f, name).Int8s()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

func tensor(t testing.TB, f *checkpoint.File, name string) *checkpoint.Tensor {
	t.Helper()
	tn, ok := f.Get(name)
	if !ok {
		t.Fatalf("no tensor %s", name)
	}
	return tn
}

// Synthetic is a data section of seeded Gaussian blobs.
func Synthetic(features, classes, samples, batch int) data.Config {
	c := data.DefaultConfig()
	c.Dataset, c.Features, c.Classes, c.Samples, c.BatchSize = data.KindSynthetic, features, classes, samples, batch
	return c
}

// Load loads a data section (seed 7), failing the test on an error.
func Load(t testing.TB, cfg data.Config) *data.Dataset {
	t.Helper()
	ds, err := data.Load(cfg, "", 7)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// Context is what the runner hands a stage, without the runner: the input model
// (nil: start from spec), a random source seeded from seed and the stage id,
// folders for artifacts and training state, and the data when ds is not nil.
func Context(t testing.TB, id string, spec arch.Spec, input *model.Model, ds *data.Dataset, cfg *data.Config, seed uint64) *stages.Context {
	src := stages.Stream(seed, "stage:"+id)
	ctx := &stages.Context{
		Context: context.Background(), ID: id, Log: zerolog.Nop(),
		Rand: rand.New(src), Source: src, Seed: seed, Spec: spec, Input: input,
		Inputs: map[string]*model.Model{}, InputMetrics: map[string]map[string]any{},
		Dir: t.TempDir(), StateDir: t.TempDir(),
	}
	if ds != nil {
		ctx.Data = func() (*data.Dataset, error) { return ds, nil }
		ctx.DataConfig = cfg
	}
	return ctx
}

// Decode decodes a registered stage type's config from raw recipe keys.
func Decode(t testing.TB, typ string, raw map[string]any) stages.Config {
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

// SaveAndLoad writes the model as the runner does and reads it back.
func SaveAndLoad(t testing.TB, m *model.Model) (*checkpoint.File, *model.Model) {
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

// LogBuffer collects log lines safely from stages running at once.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// RequireFashionEnv, set to 1 (as CI does), turns a missing Fashion-MNIST from a
// skipped test into a failed one.
const RequireFashionEnv = "SHRINK_REQUIRE_FASHION"

// RequireFashion skips the test when the Fashion-MNIST files are not
// installed, with the line that says how to get them, or fails it under
// SHRINK_REQUIRE_FASHION=1.
func RequireFashion(t testing.TB) {
	t.Helper()
	if _, err := data.FindFashionMNIST(); err != nil {
		if os.Getenv(RequireFashionEnv) == "1" {
			t.Fatalf("%s=1 but Fashion-MNIST is not available: %v", RequireFashionEnv, err)
		}
		t.Skipf("Fashion-MNIST is not available (%s=1 makes this a failure): %v", RequireFashionEnv, err)
	}
}

// RequireTorchEnv, set to 1 (as CI does), turns a missing PyTorch from a
// skipped test into a failed one.
const RequireTorchEnv = "SHRINK_REQUIRE_TORCH"

// RequireTorch skips the test when /usr/bin/python3 cannot import torch and
// numpy (the tests that hand shrink's files to PyTorch), saying how to install
// them, or fails it under SHRINK_REQUIRE_TORCH=1.
func RequireTorch(t testing.TB) {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import torch, numpy").Run(); err != nil {
		if os.Getenv(RequireTorchEnv) == "1" {
			t.Fatalf("%s=1 but /usr/bin/python3 cannot import torch: %v", RequireTorchEnv, err)
		}
		t.Skipf("PyTorch is not installed (apt-get install python3-torch; %s=1 makes this a failure)", RequireTorchEnv)
	}
}

// JSONInts turns whole numbers in a decoded JSON value into ints, as YAML
// would give them, so JSON model sections decode like recipe ones.
func JSONInts(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = JSONInts(e)
		}
	case []any:
		for i, e := range x {
			x[i] = JSONInts(e)
		}
	case float64:
		if x == math.Trunc(x) {
			return int(x)
		}
	}
	return v
}

// MaxDiff is the largest |a[i] - b[i]|, in float64 so that it is exact.
func MaxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}
