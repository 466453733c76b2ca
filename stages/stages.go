// Package stages is the stage plugin API: a stage type registers a name and a
// config constructor; its config decodes from the recipe (package config) and runs
// on a Context that hands it the input models, the data, a seeded random source
// and a logger. Each type lives in its own package under stages/ and registers
// itself in init; stages/all imports them all.
package stages

import (
	"context"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
)

// Type is a stage type.
type Type struct {
	Name    string
	Summary string
	// New returns a pointer to a config holding the defaults. It must have no side
	// effects: it also feeds the JSON Schema.
	New func() Config
	// FanIn stages take several input models (select).
	FanIn bool
}

// Config is a decoded stage config; running it is the stage's work.
type Config interface {
	Run(ctx *Context) (*Result, error)
}

// Result is what a stage produces.
type Result struct {
	Model *model.Model
	// Metrics are the stage's own metrics; the runner adds accuracy, sizes and
	// counts for every stage.
	Metrics map[string]any
	// Extra are further models to keep beside the output, saved as
	// <stage>/<name>.safetensors (online distillation's teacher).
	Extra map[string]*model.Model
	// SameAs names an input (a needs id) whose checkpoint file is the output,
	// byte for byte; Model may then be nil. select passes its choice through
	// this way, so the stages after it are keyed by the choice alone.
	SameAs string
}

// Context is what a running stage gets.
type Context struct {
	context.Context
	ID     string
	Log    zerolog.Logger
	Rand   *rand.Rand // seeded from the recipe seed and the stage id
	Source *rand.PCG  // Rand's source, for saving and restoring its state
	Seed   uint64
	// Spec is the recipe's model section; Input is the needs model (nil for a
	// stage that starts from the recipe's model: call Fresh or LoadStart).
	Spec  arch.Spec
	Input *model.Model
	// Inputs are every input model by id: needs and references.
	Inputs map[string]*model.Model
	// InputMetrics are the inputs' metrics.json contents (select reads them).
	InputMetrics map[string]map[string]any
	// InputDigests are the sha256 of the inputs' checkpoints, by id.
	InputDigests map[string]string
	// FileDigests are the sha256 of the files the config names, by key
	// (teacher_checkpoint; see config.FileReferrer).
	FileDigests map[string]string
	// Refs maps a config key ("teacher") to the id of the stage it names.
	Refs map[string]string
	// Stage is the pipeline's view: id, base, params, needs.
	Stage *pipeline.Stage
	// Dir is a folder inside the run for the stage's extra artifacts (rounds,
	// caches); it survives reruns of the same key.
	Dir string
	// StateDir holds mid-stage training state for resuming an interrupted run; it
	// is specific to the stage's key and removed when the stage completes.
	StateDir string
	// Data loads the recipe's data on first use; nil when there is none.
	Data func() (*data.Dataset, error)
	// DataConfig is the recipe's data section (nil when none).
	DataConfig *data.Config
	// DataFingerprint identifies the data (empty when none): part of cache keys.
	DataFingerprint string
	// CacheDir is a folder in the run (or --cache-dir) for derived data worth
	// keeping across runs and stages, such as a teacher's logits; name files by
	// a digest of everything they depend on.
	CacheDir string
	// Progress reports training progress (a bar on terminals, log lines elsewhere).
	Progress func(model.Progress)
	// LoadCheckpoint reads a checkpoint file the config names (teacher_checkpoint),
	// resolving it against the recipe's folder (stages.LoadFile: finite weights only).
	LoadCheckpoint func(path string) (*model.Model, error)
}

// Registry holds stage types by name. The zero value is not usable: NewRegistry.
type Registry struct {
	types map[string]Type
}

// NewRegistry returns an empty registry (tests build their own).
func NewRegistry() *Registry { return &Registry{types: map[string]Type{}} }

// Default is the registry the built-in stages register into.
var Default = NewRegistry()

// Register adds a stage type to the default registry; stage packages call it in init.
func Register(t Type) { Default.Register(t) }

// Register adds a stage type; registering a name twice panics.
func (r *Registry) Register(t Type) {
	if _, dup := r.types[t.Name]; dup {
		panic("stages: type " + t.Name + " registered twice")
	}
	r.types[t.Name] = t
}

// Get returns a stage type.
func (r *Registry) Get(name string) (Type, bool) {
	t, ok := r.types[name]
	return t, ok
}

// Lookup implements pipeline.Registry.
func (r *Registry) Lookup(name string) (pipeline.StageType, bool) {
	t, ok := r.types[name]
	if !ok {
		return pipeline.StageType{}, false
	}
	return t.pipelineType(), true
}

// Types implements pipeline.Registry.
func (r *Registry) Types() []pipeline.StageType {
	names := slices.Sorted(maps.Keys(r.types))
	out := make([]pipeline.StageType, len(names))
	for i, n := range names {
		out[i] = r.types[n].pipelineType()
	}
	return out
}

func (t Type) pipelineType() pipeline.StageType {
	return pipeline.StageType{Name: t.Name, Summary: t.Summary, FanIn: t.FanIn, New: func() any { return t.New() }}
}

// CommonMetrics are the metrics.json keys the runner writes for every stage
// (with a data section; accuracy, loss and test_samples need one), beside the
// stage's own. select checks its metric names against them for typos.
var CommonMetrics = []string{
	"accuracy", "compressed_bytes", "compression_ratio", "dense_f32_bytes", "layers", "loss",
	"macs", "params_nonzero", "params_total", "seconds", "size_bytes", "sparsity", "test_samples", "weight_sparsity",
}

// Round6 rounds a metric to 6 decimals, so metrics.json stays readable and
// stable across platforms' last-bit differences in printing.
func Round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// Sig6 rounds x to six significant digits, for logs: a loss of 1e28 and one
// of 0.0698 both keep what a reader can use.
func Sig6(x float64) float64 {
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 6, 64), 64)
	return v
}
