package report

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/shrink-ml/shrink/runner"
)

// layerMetric is one per-layer quantity, plotted as bars grouped by stage.
type layerMetric struct {
	file, title, unit string
	value             func(runner.LayerMetrics) float64
	max               float64 // the y axis' top; 0: automatic
}

var layerMetrics = []layerMetric{
	{"layers-sparsity.png", "Weight sparsity per layer", "pruned weights (%)",
		func(l runner.LayerMetrics) float64 { return 100 * l.Sparsity }, 100},
	{"layers-bits.png", "Weight bit width per layer", "bits per weight (32 = float)",
		func(l runner.LayerMetrics) float64 { return float64(l.Bits) }, 33},
	{"layers-rank.png", "Rank per layer", "rank (full rank when not factored)", fullRank, 0},
}

// fullRank is a layer's rank: its factorization's, or min(out, fan-in).
func fullRank(l runner.LayerMetrics) float64 {
	if l.Rank > 0 {
		return float64(l.Rank)
	}
	if len(l.Shape) == 0 {
		return 0
	}
	fanIn := 1
	for _, d := range l.Shape[1:] {
		fanIn *= d
	}
	return float64(min(l.Shape[0], fanIn))
}

// layerWidth is the plot's width for n stages: wide enough for their bars.
func layerWidth(stages, layers int) vg.Length {
	return max(9*vg.Inch, vg.Length(stages*(layers+1))*14*vg.Millimeter/3)
}

// layerPlot draws one metric: a group of bars per stage, a bar (and a legend
// entry) per layer.
func (r *Run) layerPlot(m layerMetric) (*plot.Plot, error) {
	stages := r.measured()
	p := newPlot(fmt.Sprintf("%s: %s (seed %d)", m.title, r.Manifest.Recipe.Name, r.Manifest.Seed), "stage", m.unit)
	p.Add(plotter.NewGrid())
	names := make([]string, len(stages))
	longest := 0
	for i, s := range stages {
		names[i] = s.ID
		longest = max(longest, len(s.ID))
	}
	width := layerWidth(len(stages), len(r.LayerNames))
	// Slant the stage names when they would not fit side by side.
	if perStage := (width - 1.2*vg.Inch) / vg.Length(len(stages)); vg.Length(longest)*0.55*p.X.Tick.Label.Font.Size > 0.9*perStage {
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = -0.9, -0.4
	}
	bar := min(vg.Points(18), (width-1.5*vg.Inch)/vg.Length(len(stages)*(len(r.LayerNames)+1)))
	for i, layer := range r.LayerNames {
		values := make(plotter.Values, len(stages))
		for j, s := range stages {
			if l, ok := s.Layers[layer]; ok {
				values[j] = m.value(l)
			}
		}
		b, err := plotter.NewBarChart(values, bar)
		if err != nil {
			return nil, err
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		b.Offset = vg.Length(float64(i)-float64(len(r.LayerNames)-1)/2) * bar
		p.Add(b)
		p.Legend.Add(layer, b)
	}
	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(4)
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(stages))-0.5
	// Room above the bars for the legend; ticks stop at the metric's top.
	top := m.max
	if top == 0 {
		top = p.Y.Max
	}
	p.Y.Min, p.Y.Max = 0, top*1.22
	p.Y.Tick.Marker = cappedTicks{top}
	return p, nil
}

// cappedTicks are the default ticks up to a cap.
type cappedTicks struct{ cap float64 }

func (c cappedTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for _, t := range (plot.DefaultTicks{}).Ticks(lo, c.cap) {
		if t.Value <= c.cap+1e-9 {
			out = append(out, t)
		}
	}
	return out
}
