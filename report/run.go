package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/export"
	"github.com/shrink-ml/shrink/runner"
)

// Stage is one row of the report: a stage's record and its metrics.
type Stage struct {
	ID, Type, Status, Folder string
	Error, Reason            string // why it failed, or was skipped
	Needs                    []string
	Seconds                  float64
	Measured                 bool     // it has a model and metrics (ran or cached)
	Accuracy                 *float64 // nil without test data
	Params, NonZero          int64
	MACs                     int64 // multiply-accumulates per sample; 0 when the metrics predate them
	Sparsity                 float64
	Size, Compressed         int64
	Ratio                    float64
	Selected                 string // select stages: the stage chosen
	Layers                   map[string]runner.LayerMetrics
	// Latency is the checkpoint's median batch-1 inference time in seconds,
	// 0 unless the report was asked to measure it (Options.Latency).
	Latency float64
	// Recomputed is set when the compressed size was not in the stage's metrics
	// (a result stored before shrink measured it) and the report computed it.
	Recomputed bool
}

// Run is what the report shows of a run folder.
type Run struct {
	Dir        string
	Manifest   *runner.Manifest
	Stages     []*Stage
	LayerNames []string // in forward order
	Dense      int64    // the recipe model's dense F32 bytes: the ratio's baseline
	Arch       *arch.Spec
}

// Load reads a run folder's run.json and stage metrics.
func Load(dir string) (*Run, error) {
	man, err := runner.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	r := &Run{Dir: dir, Manifest: man}
	if spec, err := recipeArch(man); err == nil {
		r.Arch = spec
		r.Dense, _ = export.DenseF32Bytes(*spec) // 0 (no ratio) for an architecture this build cannot expand
	}
	for _, rec := range man.Stages {
		s, err := r.stage(rec)
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", rec.ID, err)
		}
		r.Stages = append(r.Stages, s)
	}
	r.LayerNames = r.layerOrder()
	return r, nil
}

// recipeArch is the resolved recipe's model section.
func recipeArch(man *runner.Manifest) (*arch.Spec, error) {
	m, ok := man.Recipe.Resolved["model"]
	if !ok {
		return nil, fmt.Errorf("no model in the resolved recipe")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	spec, err := arch.Parse(string(b))
	return &spec, err
}

func (r *Run) stage(rec *runner.StageRecord) (*Stage, error) {
	s := &Stage{ID: rec.ID, Type: rec.Type, Status: rec.Status, Folder: rec.Folder, Needs: rec.Needs, Seconds: rec.Seconds,
		Error: rec.Error, Reason: rec.Reason}
	m := rec.Metrics
	if m == nil || (rec.Status != "ran" && rec.Status != "cached") {
		return s, nil
	}
	s.Measured = true
	if v, ok := m["accuracy"].(float64); ok {
		s.Accuracy = &v
	}
	s.Params, s.NonZero = integer(m["params_total"]), integer(m["params_nonzero"])
	s.MACs = integer(m["macs"])
	s.Sparsity, _ = m["sparsity"].(float64)
	s.Size, s.Compressed = integer(m["size_bytes"]), integer(m["compressed_bytes"])
	s.Ratio, _ = m["compression_ratio"].(float64)
	s.Selected, _ = m["selected"].(string)
	if d := integer(m["dense_f32_bytes"]); d > 0 && r.Dense == 0 {
		r.Dense = d
	}
	if b, err := json.Marshal(m["layers"]); err == nil {
		_ = json.Unmarshal(b, &s.Layers) // a stage without per-layer metrics just has none
	}
	if s.Compressed == 0 {
		if err := r.recompute(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// recompute measures the compressed size of a stage whose metrics predate it.
func (r *Run) recompute(s *Stage) error {
	path := filepath.Join(r.Dir, r.folder(s), "model.safetensors")
	if _, err := os.Stat(path); err != nil {
		return nil // nothing to measure: the table shows "-"
	}
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		return err
	}
	c, err := export.Measure(f, r.Dense)
	if err != nil {
		return err
	}
	s.Compressed, s.Recomputed = c.Bytes, true
	if r.Dense > 0 {
		s.Ratio = c.Ratio
	}
	return nil
}

// folder is the stage's folder inside the run.
func (r *Run) folder(s *Stage) string {
	if s.Folder != "" {
		return s.Folder
	}
	return runner.Folder(s.ID)
}

// layerOrder lists the layers in the recipe model's forward order, then any
// other layer a stage reports, sorted.
func (r *Run) layerOrder() []string {
	var names []string
	if r.Arch != nil {
		names = r.Arch.LayerNames()
	}
	var extra []string
	for _, s := range r.Stages {
		for name := range s.Layers {
			if !slices.Contains(names, name) && !slices.Contains(extra, name) {
				extra = append(extra, name)
			}
		}
	}
	sort.Strings(extra)
	return append(names, extra...)
}

// unfinished lists the stages that failed, were skipped or did not run, in
// run order.
func (r *Run) unfinished() []*Stage {
	var out []*Stage
	for _, s := range r.Stages {
		if s.Status != "ran" && s.Status != "cached" {
			out = append(out, s)
		}
	}
	return out
}

// hasData says whether the recipe had a data section (test data to measure on).
func (r *Run) hasData() bool {
	d, ok := r.Manifest.Recipe.Resolved["data"]
	return ok && d != nil
}

// measured lists the stages with metrics, in run order.
func (r *Run) measured() []*Stage {
	var out []*Stage
	for _, s := range r.Stages {
		if s.Measured {
			out = append(out, s)
		}
	}
	return out
}

// integer is a metrics.json count (decoded as float64), or 0.
func integer(v any) int64 {
	x, _ := config.AsFloat(v)
	return int64(x)
}
