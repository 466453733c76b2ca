package report

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/infer"
	"gonum.org/v1/plot/vg"
)

// Result lists what Write wrote.
type Result struct {
	Files []string // paths, report.md first
	Run   *Run
}

// Options are what Write measures beyond the run's own records.
type Options struct {
	// Latency times each stage's checkpoint on this machine (batch 1, package
	// infer, for about this long) and adds the median to the stage table.
	// Timings differ from run to run, so the report is only reproducible
	// without them (the default).
	Latency time.Duration
}

// Write reads the run folder dir and writes report.md and the PNG plots into it.
func Write(dir string) (*Result, error) { return WriteWith(dir, Options{}) }

// WriteWith is Write with measurements chosen by opt.
func WriteWith(dir string, opt Options) (*Result, error) {
	r, err := Load(dir)
	if err != nil {
		return nil, err
	}
	if opt.Latency > 0 {
		if err := r.measureLatency(opt.Latency); err != nil {
			return nil, err
		}
	}
	type png struct {
		name string
		b    []byte
	}
	var pngs []png
	fp, err := r.frontierPlot()
	if err != nil {
		return nil, fmt.Errorf("frontier plot: %w", err)
	}
	if fp != nil {
		b, err := renderPNG(fp, 9*vg.Inch)
		if err != nil {
			return nil, err
		}
		pngs = append(pngs, png{"frontier.png", b})
	}
	if len(r.measured()) > 0 && len(r.LayerNames) > 0 {
		for _, m := range layerMetrics {
			if !r.shows(m) {
				continue // a plot of uncompressed layers only would be empty
			}
			p, err := r.layerPlot(m)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.file, err)
			}
			b, err := renderPNG(p, layerWidth(len(r.measured()), len(r.LayerNames)))
			if err != nil {
				return nil, err
			}
			pngs = append(pngs, png{m.file, b})
		}
	}
	plots := map[string]bool{}
	for _, p := range pngs {
		plots[p.name] = true
	}
	res := &Result{Run: r}
	write := func(name string, b []byte) error {
		path := filepath.Join(dir, name)
		if err := checkpoint.WriteBytes(path, b); err != nil {
			return fmt.Errorf("writing the report: %w", err)
		}
		res.Files = append(res.Files, path)
		return nil
	}
	if err := write("report.md", []byte(r.markdown(plots))); err != nil {
		return nil, err
	}
	for _, p := range pngs {
		if err := write(p.name, p.b); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// measureLatency times every measured stage's checkpoint at batch 1.
func (r *Run) measureLatency(d time.Duration) error {
	for _, s := range r.measured() {
		path := filepath.Join(r.Dir, r.folder(s), "model.safetensors")
		if _, err := os.Stat(path); err != nil {
			continue // a stage without a model: no latency
		}
		m, err := infer.Load(path, infer.Options{MaxBatch: 1, Sizes: 1})
		if err != nil {
			return fmt.Errorf("stage %s: %w", s.ID, err)
		}
		t, err := m.Measure(1, d)
		if err != nil {
			return fmt.Errorf("stage %s: %w", s.ID, err)
		}
		s.Latency = t.Median
	}
	return nil
}
