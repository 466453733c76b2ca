package model

import (
	"context"
	"fmt"
	"slices"

	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/quant"
)

// CalibrateOptions configure Calibrate.
type CalibrateOptions struct {
	BatchSize int
	// Percentile, when above 0, takes each range from the Percentile-th and
	// (100 - Percentile)-th percentiles of every observed value instead of their
	// min and max, so the rarest outliers do not stretch the grid.
	Percentile float64
	// Layers are the layers to calibrate (nil: every layer whose input is
	// static); the others keep their ranges.
	Layers []string
}

// Calibrate runs calib through the model in float (as PyTorch calibrates a
// prepared model: float weights, float activations) and sets the range and
// parameters of every layer whose input is statically quantized, from the values
// that layer's input took: torch.ao's MinMaxObserver, or a percentile observer.
// Layers with no static input quantization are left alone.
func Calibrate(ctx context.Context, m *Model, calib *data.Split, opt CalibrateOptions) error {
	var targets []*Layer
	for _, l := range m.Layers {
		if l.Input != nil && l.Input.Mode == "static" && (opt.Layers == nil || slices.Contains(opt.Layers, l.Name)) {
			targets = append(targets, l)
		}
	}
	if len(targets) == 0 {
		return nil
	}
	if calib.N == 0 {
		return fmt.Errorf("calibration: no rows to calibrate on")
	}
	bs := min(opt.BatchSize, calib.N)
	if bs <= 0 {
		return fmt.Errorf("calibration: batch size must be positive")
	}
	net, err := Build(m, NetOptions{Batch: bs, Mode: ModeCalibrate})
	if err != nil {
		return err
	}
	for _, op := range net.observe {
		op.keep = opt.Percentile > 0
	}
	for start := 0; start < calib.N; start += bs {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, _ := net.loadBatch(calib, start)
		for _, op := range net.observe {
			op.rows = n
		}
		if err := net.Run(); err != nil {
			return fmt.Errorf("calibration batch %d: %w", start/bs+1, err)
		}
	}
	for _, l := range targets {
		op := net.observe[l.Name]
		lo, hi := op.min, op.max
		if opt.Percentile > 0 {
			lo, hi = op.percentileRange(opt.Percentile)
		}
		spec := l.Input.Spec
		spec.Granularity = quant.PerTensor
		l.Input.RangeMin, l.Input.RangeMax = lo, hi
		l.Input.Params = spec.ObserveRange(lo, hi)
	}
	return nil
}
