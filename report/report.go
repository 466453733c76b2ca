package report

import (
	"fmt"
	"path/filepath"

	"github.com/shrink-ml/shrink/checkpoint"
	"gonum.org/v1/plot/vg"
)

// Result lists what Write wrote.
type Result struct {
	Files []string // paths, report.md first
	Run   *Run
}

// Write reads the run folder dir and writes report.md and the PNG plots into it.
func Write(dir string) (*Result, error) {
	r, err := Load(dir)
	if err != nil {
		return nil, err
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
