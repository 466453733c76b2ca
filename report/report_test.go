package report

import (
	"bytes"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"

	"github.com/shrink-ml/shrink/runner"
)

var update = flag.Bool("update", false, "rewrite testdata/report/report.golden.md")

const testRun = "../testdata/report/run"

// copyRun copies the stored run folder to a temporary one the report can write in.
func copyRun(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := filepath.WalkDir(testRun, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(testRun, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestGolden writes the report of a stored synthetic run (train, a pruning
// matrix, 4-bit quantization of each branch, lowrank, select; lowrank's
// metrics lack compressed_bytes, so the report measures its checkpoint) and
// compares report.md with the golden file; the plots must decode at their size.
func TestGolden(t *testing.T) {
	dir := copyRun(t)
	res, err := Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The reproduce line names the run folder, a temporary one here.
	got = bytes.ReplaceAll(got, []byte(dir), []byte("runs/report-golden"))
	golden := "../testdata/report/report.golden.md"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("report.md differs from %s (go test ./report -update rewrites it):\n%s", golden, got)
	}
	wantFiles := []string{"report.md", "frontier.png", "layers-sparsity.png", "layers-bits.png", "layers-rank.png"}
	if len(res.Files) != len(wantFiles) {
		t.Fatalf("wrote %v, want %v", res.Files, wantFiles)
	}
	stages, layers := len(res.Run.measured()), len(res.Run.LayerNames)
	for i, name := range wantFiles {
		if filepath.Base(res.Files[i]) != name {
			t.Errorf("file %d is %s, want %s", i, res.Files[i], name)
		}
		if !strings.HasSuffix(name, ".png") {
			continue
		}
		f, err := os.Open(res.Files[i])
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		w := 1080 // 9 inches at 120 DPI
		if name != "frontier.png" {
			w = int(layerWidth(stages, layers).Dots(DPI) + 0.5)
		}
		if b := img.Bounds(); b.Dx() != w || b.Dy() != 660 {
			t.Errorf("%s is %dx%d, want %dx660", name, b.Dx(), b.Dy(), w)
		}
	}
}

func TestPareto(t *testing.T) {
	s := func(id string) *Stage { return &Stage{ID: id} }
	pts := []point{
		{s("dense"), 1000, 98},
		{s("pruned"), 100, 97.9},
		{s("worse"), 200, 97.5}, // larger and less accurate than pruned
		{s("tie"), 100, 97.9},   // equal to pruned: the first in run order stays
		{s("tiny"), 10, 90},
		{s("same size"), 10, 91}, // beats tiny
		{s("bigger"), 2000, 98},  // no more accurate than dense
	}
	var ids []string
	for _, p := range pareto(pts) {
		ids = append(ids, p.stage.ID)
	}
	if got := strings.Join(ids, " "); got != "same size pruned dense" {
		t.Errorf("frontier %q, want %q", got, "same size pruned dense")
	}
}

func TestNotARunFolder(t *testing.T) {
	_, err := Write(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "is not a run folder") {
		t.Errorf("error %v", err)
	}
}

// A run without test data has no frontier but still a table and layer plots.
func TestNoAccuracy(t *testing.T) {
	dir := copyRun(t)
	man, err := runner.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &Run{Dir: dir, Manifest: man}
	for _, rec := range man.Stages {
		delete(rec.Metrics, "accuracy")
		st, err := r.stage(rec)
		if err != nil {
			t.Fatal(err)
		}
		r.Stages = append(r.Stages, st)
	}
	p, err := r.frontierPlot()
	if err != nil || p != nil {
		t.Fatalf("frontier plot %v, %v; want none", p, err)
	}
	if md := r.markdown(nil); !strings.Contains(md, "there is no frontier") {
		t.Error("the report does not say why there is no frontier")
	}
}

// With Options.Latency the stage table gets a latency column: the stage
// whose checkpoint is in the folder (lowrank) is timed, the others show "-".
func TestLatencyColumn(t *testing.T) {
	dir := copyRun(t)
	if _, err := WriteWith(dir, Options{Latency: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	if !strings.Contains(md, "| ratio | latency | seconds |") {
		t.Fatalf("no latency column:\n%s", md)
	}
	timed := 0
	for _, line := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(line, "| lowrank | lowrank |"):
			timed++
			if !strings.Contains(line, " µs |") {
				t.Errorf("lowrank has no latency: %s", line)
			}
		case strings.HasPrefix(line, "| train | train |"):
			if strings.Contains(line, "µs") {
				t.Errorf("train has no checkpoint here but a latency: %s", line)
			}
		}
	}
	if timed != 1 {
		t.Errorf("%d lowrank stage rows, want 1", timed)
	}
}

// TestPlotsOnlyWhatWasCompressed: a run without low rank gets no rank plot
// (it would show full ranks only), nor a bits plot without quantization.
func TestPlotsOnlyWhatWasCompressed(t *testing.T) {
	stage := func(l runner.LayerMetrics) *Stage {
		return &Stage{ID: "s", Measured: true, Layers: map[string]runner.LayerMetrics{"fc1": l}}
	}
	dense := runner.LayerMetrics{Params: 6, NonZero: 6, Bits: 32, Shape: []int{2, 3}}
	pruned := runner.LayerMetrics{Params: 6, NonZero: 3, Sparsity: 0.5, Bits: 32, Shape: []int{2, 3}}
	for _, tc := range []struct {
		name   string
		layers []runner.LayerMetrics
		want   []string
	}{
		{"dense only", []runner.LayerMetrics{dense}, nil},
		{"pruned", []runner.LayerMetrics{dense, pruned}, []string{"layers-sparsity.png"}},
		{"quantized and factored", []runner.LayerMetrics{{Params: 6, NonZero: 6, Bits: 4, Rank: 1, Shape: []int{2, 3}}},
			[]string{"layers-bits.png", "layers-rank.png"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Run{}
			for _, l := range tc.layers {
				r.Stages = append(r.Stages, stage(l))
			}
			var got []string
			for _, m := range layerMetrics {
				if r.shows(m) {
					got = append(got, m.file)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("plots %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTicks: every axis has at least three labels, a narrow range included
// (gonum's defaults can leave one).
func TestTicks(t *testing.T) {
	labels := func(ts []plot.Tick) int {
		n := 0
		for _, t := range ts {
			if t.Label != "" {
				n++
			}
		}
		return n
	}
	for _, r := range [][2]float64{{97.6, 98.3}, {0, 100}, {69.5, 91.75}, {0, 0.004}} {
		if n := labels(enoughTicks{}.Ticks(r[0], r[1])); n < 4 {
			t.Errorf("linear %v: %d labels", r, n)
		}
	}
	for _, r := range [][2]float64{{1.3, 1.8}, {0.8, 11}, {20, 40}, {12, 1200}} {
		if n := labels(logTicks{}.Ticks(r[0], r[1])); n < 3 {
			t.Errorf("log %v: %d labels", r, n)
		}
	}
}
