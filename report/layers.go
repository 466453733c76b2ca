package report

import (
	"fmt"
	"math"
	"strconv"

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
	used              func(runner.LayerMetrics) bool
}

var layerMetrics = []layerMetric{
	// Zeros, not "pruned": quantization also rounds small weights to zero.
	{"layers-sparsity.png", "Zero weights per layer", "weights that are zero (%): pruned, or quantized to 0",
		func(l runner.LayerMetrics) float64 { return 100 * l.Sparsity }, 100, func(l runner.LayerMetrics) bool { return l.Sparsity > 0 }},
	{"layers-bits.png", "Weight bit width per layer", "bits per weight (32 = float)",
		func(l runner.LayerMetrics) float64 { return float64(l.Bits) }, 32, func(l runner.LayerMetrics) bool { return l.Bits != 32 }},
	{"layers-rank.png", "Rank per layer", "rank (full rank when not factored)", fullRank, 0, func(l runner.LayerMetrics) bool { return l.Rank > 0 }},
}

// shows says whether a metric is worth a plot: some stage's layer differs
// from an uncompressed one (a rank plot of a run without low rank would show
// only full ranks).
func (r *Run) shows(m layerMetric) bool {
	for _, s := range r.measured() {
		for _, l := range s.Layers {
			if m.used(l) {
				return true
			}
		}
	}
	return false
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
	// The axis ends at the metric's top (100%, 32 bits): the legend goes in
	// room made right of the last stage, not above the top.
	legendRoom := (vg.Length(longestName(r.LayerNames))*0.6*p.Legend.TextStyle.Font.Size + vg.Points(30)) / ((width - 1.2*vg.Inch) / vg.Length(len(stages)))
	p.X.Min, p.X.Max = -0.5, float64(len(stages))-0.5+float64(legendRoom)
	top := m.max
	if top == 0 {
		top = p.Y.Max * 1.05
	}
	p.Y.Min, p.Y.Max = 0, top
	p.Y.Tick.Marker = enoughTicks{}
	return p, nil
}

func longestName(names []string) int {
	n := 0
	for _, s := range names {
		n = max(n, len(s))
	}
	return n
}

// enoughTicks labels an axis with at least four values: the 1, 2, 5 steps
// that give four to ten labels across the range (gonum's default can leave a
// narrow range with one or two), with an unlabelled tick between labels.
type enoughTicks struct{}

func (enoughTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: formatTick(lo)}}
	}
	step := niceStep((hi - lo) / 4)
	var out []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, plot.Tick{Value: v, Label: formatTick(v)})
		if v+step/2 <= hi {
			out = append(out, plot.Tick{Value: v + step/2})
		}
	}
	return out
}

// niceStep is the largest 1, 2 or 5 times a power of ten at most x.
func niceStep(x float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{5, 2, 1} {
		if m*p <= x {
			return m * p
		}
	}
	return p
}

func formatTick(v float64) string {
	if math.Abs(v) < 1e-9 {
		v = 0
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}
