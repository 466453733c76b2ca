package report

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// point is a stage on the frontier plot.
type point struct {
	stage    *Stage
	kb       float64 // compressed size, KB (1000 bytes)
	accuracy float64 // percent
}

// points are the measured stages with an accuracy and a compressed size,
// select stages aside: each is a copy of the stage it chose.
func (r *Run) points() []point {
	var out []point
	for _, s := range r.measured() {
		if s.Accuracy != nil && s.Compressed > 0 && s.Type != "select" {
			out = append(out, point{s, float64(s.Compressed) / 1000, 100 * *s.Accuracy})
		}
	}
	return out
}

// pareto returns the points no other point beats on both axes (smaller or equal
// and at least as accurate, better on one), by size; equal points keep the
// first in run order.
func pareto(pts []point) []point {
	sorted := append([]point(nil), pts...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].kb != sorted[j].kb {
			return sorted[i].kb < sorted[j].kb
		}
		return sorted[i].accuracy > sorted[j].accuracy
	})
	var out []point
	best := math.Inf(-1)
	for _, p := range sorted {
		if p.accuracy > best {
			out = append(out, p)
			best = p.accuracy
		}
	}
	return out
}

// frontierPlot draws accuracy against compressed size: every stage a point
// labeled with its id, marked by stage type, and the Pareto frontier.
// It returns nil when no stage has both (a recipe without test data).
func (r *Run) frontierPlot() (*plot.Plot, error) {
	pts := r.points()
	if len(pts) == 0 {
		return nil, nil
	}
	p := newPlot(fmt.Sprintf("Compression frontier: %s (seed %d)", r.Manifest.Recipe.Name, r.Manifest.Seed),
		"compressed size (KB, log scale)", "test accuracy (%)")
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = logTicks{}
	p.Y.Tick.Marker = enoughTicks{}
	p.Add(plotter.NewGrid())

	front := pareto(pts)
	if len(front) > 1 {
		line, err := plotter.NewLine(xys(front))
		if err != nil {
			return nil, err
		}
		line.Color = color.RGBA{R: 200, G: 40, B: 40, A: 255}
		line.Width = vg.Points(1.5)
		line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		p.Add(line)
		p.Legend.Add("Pareto frontier", line)
	}
	for i, typ := range stageTypes(pts) {
		var of []point
		for _, pt := range pts {
			if pt.stage.Type == typ {
				of = append(of, pt)
			}
		}
		sc, err := plotter.NewScatter(xys(of))
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: plotutil.Color(i), Shape: plotutil.Shape(i), Radius: vg.Points(4.5)}
		p.Add(sc)
		p.Legend.Add(typ, sc)
	}
	// Room for the labels right of the last point and above and below the rest.
	lo, hi := extent(pts, func(p point) float64 { return p.kb })
	p.X.Min, p.X.Max = lo/1.6, hi*2.2
	ylo, yhi := extent(pts, func(p point) float64 { return p.accuracy })
	pad := max((yhi-ylo)*0.12, 0.5)
	p.Y.Min, p.Y.Max = ylo-pad, yhi+pad
	legend := placeLegend(p, pts, len(stageTypes(pts))+1)
	for i, off := range placeLabels(pts, p, legend) {
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys(pts[i : i+1]), Labels: ids(pts[i : i+1])})
		if err != nil {
			return nil, err
		}
		l.Offset = off
		l.TextStyle[0].Font.Size = labelSize
		p.Add(l)
	}
	return p, nil
}

const labelSize = 11 // points

// The plot area in points, about: the canvas less the axes and title. Label
// and legend placement work in it; close is enough to keep things apart.
const areaW, areaH = 560.0, 320.0

// box is a rectangle on the plot area, in points from its bottom left.
type box struct{ x0, y0, x1, y1 float64 }

func (b box) overlaps(o box) bool { return b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1 }

// at is where a point falls on the plot area.
func at(p *plot.Plot, pt point) (x, y float64) {
	lx0, lx1 := math.Log10(p.X.Min), math.Log10(p.X.Max)
	return (math.Log10(pt.kb) - lx0) / (lx1 - lx0) * areaW, (pt.accuracy - p.Y.Min) / (p.Y.Max - p.Y.Min) * areaH
}

// placeLegend puts the legend in the first corner free of points (top left,
// top right, bottom right, bottom left), or raises the top to make room at
// the top left. It returns the legend's box.
func placeLegend(p *plot.Plot, pts []point, entries int) box {
	w, h := 150.0, 16*float64(entries)+10
	corners := []struct {
		top, left bool
		b         box
	}{
		{true, true, box{0, areaH - h, w, areaH}},
		{true, false, box{areaW - w, areaH - h, areaW, areaH}},
		{false, false, box{areaW - w, 0, areaW, h}},
		{false, true, box{0, 0, w, h}},
	}
	free := func(b box) bool {
		for _, pt := range pts {
			x, y := at(p, pt)
			if b.overlaps(box{x - 40, y - 8, x + 90, y + 8}) { // the marker and its label
				return false
			}
		}
		return true
	}
	chosen := corners[0]
	found := false
	for _, c := range corners {
		if free(c.b) {
			chosen, found = c, true
			break
		}
	}
	if !found { // make room above the highest point
		p.Y.Max += (p.Y.Max - p.Y.Min) * h / (areaH - h)
	}
	p.Legend.Top, p.Legend.Left = chosen.top, chosen.left
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), -vg.Points(8)
	if !chosen.left {
		p.Legend.XOffs = -vg.Points(8)
	}
	if !chosen.top {
		p.Legend.YOffs = vg.Points(8)
	}
	return chosen.b
}

// placeLabels offsets each point's label so labels do not overlap each other,
// the markers or the legend: right of the point, else above or below it, else
// left.
func placeLabels(pts []point, p *plot.Plot, legend box) []vg.Point {
	placed := []box{legend}
	for _, pt := range pts {
		x, y := at(p, pt)
		placed = append(placed, box{x - 5, y - 5, x + 5, y + 5})
	}
	free := func(b box) bool {
		for _, o := range placed {
			if b.overlaps(o) {
				return false
			}
		}
		return true
	}
	out := make([]vg.Point, len(pts))
	for i, pt := range pts {
		x, y := at(p, pt)
		tw := 0.55 * labelSize * float64(len(pt.stage.ID))
		candidates := [][2]float64{{8, -4}, {8, 9}, {8, -17}, {-8 - tw, -4}, {8, 22}, {8, -30}}
		best := candidates[0]
		for _, c := range candidates {
			b := box{x + c[0], y + c[1], x + c[0] + tw, y + c[1] + labelSize}
			if free(b) {
				best = c
				placed = append(placed, b)
				break
			}
		}
		out[i] = vg.Point{X: vg.Points(best[0]), Y: vg.Points(best[1])}
	}
	return out
}

// logTicks labels 1, 2, 5 times each power of ten, or every mantissa when
// that leaves fewer than three labels, or finer steps still within a narrow
// range (1.3 to 1.8 KB), so the axis always reads.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	for _, labelled := range [][]int{{1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}} {
		var ticks []plot.Tick
		labels := 0
		for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
			for m := 1; m < 10; m++ {
				v := float64(m) * math.Pow(10, e)
				if v < lo || v > hi {
					continue
				}
				t := plot.Tick{Value: v}
				if slices.Contains(labelled, m) {
					t.Label = fmt.Sprintf("%g", v)
					labels++
				}
				ticks = append(ticks, t)
			}
		}
		if labels >= 3 {
			return ticks
		}
	}
	return enoughTicks{}.Ticks(lo, hi) // within one mantissa step: linear ticks
}

func stageTypes(pts []point) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range pts {
		if !seen[p.stage.Type] {
			seen[p.stage.Type] = true
			out = append(out, p.stage.Type)
		}
	}
	return out
}

func xys(pts []point) plotter.XYs {
	out := make(plotter.XYs, len(pts))
	for i, p := range pts {
		out[i] = plotter.XY{X: p.kb, Y: p.accuracy}
	}
	return out
}

func ids(pts []point) []string {
	out := make([]string, len(pts))
	for i, p := range pts {
		out[i] = p.stage.ID
	}
	return out
}

func extent(pts []point, f func(point) float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		lo, hi = min(lo, f(p)), max(hi, f(p))
	}
	return lo, hi
}
