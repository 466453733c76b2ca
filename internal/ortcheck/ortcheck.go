// Package ortcheck exports the checkpoints of a recipe's run to ONNX and
// checks each in onnxruntime against shrink's own logits on the recipe's
// test data, as shrink predict computes them (its batches, in data order):
// ONNX's checker passes; a float model matches to float32 rounding (every
// logit within 1e-4 of its row's largest magnitude, at least 1); a
// quantized one agrees on the class of at least 99.5% of the samples with
// a median |logit difference| of at most 2e-3. It can also time
// onnxruntime and shrink on the same checkpoints. tools/ortcheck is its
// command; the CLI's script tests use it too.
package ortcheck

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/export/onnxexport"
	"github.com/shrink-ml/shrink/infer"
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/npy"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
)

// Row is one checkpoint's check (and timings).
type Row struct {
	Stage, Kind string // the folder in the run; float, pruned, factored, int QDQ static/dynamic
	// Argmax is the share of samples whose class agrees; Median and Max the
	// |logit differences|; Worst the largest relative to its row's largest
	// logit (at least 1).
	Argmax, Median, Max, Worst float64
	Pass                       bool
	ONNXBytes                  int64
	ORT, Own                   [2]time.Duration // batch 1, batch 256: median per run, one thread
}

// Options select and tune a check.
type Options struct {
	Stages []string // folders to check (nil: every checkpoint in the run)
	Keep   string   // write the exports here (default: a temporary folder)
	Bench  bool     // also time onnxruntime and shrink
	// Opt is onnxruntime's graph optimization level (default all);
	// disabled runs the graph as written, without integer kernels.
	Opt string
	// FloatBias exports with onnxexport.Options.FloatBias.
	FloatBias bool
	// IntBias and BiasBudget export with onnxexport.Options.IntBias and
	// BiasBudget.
	IntBias    bool
	BiasBudget float64
	// ORTDynamic exports with onnxexport.Options.ORTDynamic: reduce_range
	// inputs on onnxruntime's own grid, for its integer kernels.
	ORTDynamic bool
	Log        io.Writer
}

// Run checks the run's checkpoints; ok is whether all passed. err is a
// problem that stopped the check itself.
func Run(recipe *pipeline.Recipe, runDir string, o Options) (rows []Row, ok bool, err error) {
	if recipe.Data == nil {
		return nil, false, fmt.Errorf("%s has no data section", recipe.File)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	rt, err := ortest.Locate()
	if err != nil {
		return nil, false, err
	}
	ds, err := data.Load(*recipe.Data, recipe.Dir, recipe.Seed)
	if err != nil {
		return nil, false, err
	}
	ckpts, err := checkpoints(runDir, o.Stages)
	if err != nil {
		return nil, false, err
	}
	if len(ckpts) == 0 {
		return nil, false, fmt.Errorf("no model.safetensors under %s", runDir)
	}
	tmp, err := os.MkdirTemp("", "ortcheck-")
	if err != nil {
		return nil, false, err
	}
	defer os.RemoveAll(tmp)
	out := o.Keep
	if out == "" {
		out = tmp
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, false, err
	}
	ok = true
	for _, c := range ckpts {
		r, err := check(rt, recipe, ds.Test, c, runDir, out, o)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", c, err)
		}
		ok = ok && r.Pass
		rows = append(rows, r)
		fmt.Fprintf(o.Log, "%s: %s\n", r.Stage, Verdict(r))
	}
	return rows, ok, nil
}

// checkpoints finds the run's model.safetensors files (every stage, every
// lottery round), by folder relative to the run.
func checkpoints(runDir string, want []string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(runDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".shrink" {
			return filepath.SkipDir
		}
		if d.Name() != "model.safetensors" {
			return nil
		}
		rel, _ := filepath.Rel(runDir, filepath.Dir(p))
		if want == nil || slices.Contains(want, rel) {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

func check(rt *ortest.Runtime, recipe *pipeline.Recipe, test *data.Split, path, runDir, outDir string, o Options) (Row, error) {
	stage, _ := filepath.Rel(runDir, filepath.Dir(path))
	r := Row{Stage: stage}
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		return r, err
	}
	m, err := model.FromFile(f, &recipe.Model)
	if err != nil {
		return r, err
	}
	r.Kind = kind(m)
	res, err := onnxexport.Export(m, onnxexport.Options{Metadata: f.Metadata, FloatBias: o.FloatBias, IntBias: o.IntBias, BiasBudget: o.BiasBudget, ORTDynamic: o.ORTDynamic})
	if err != nil {
		return r, err
	}
	for _, n := range res.Notes {
		if strings.Contains(n, "INT32") {
			fmt.Fprintf(o.Log, "%s: %s\n", stage, n) // which layers keep onnxruntime's INT32 biases, and why not the others
		}
	}
	file := filepath.Join(outDir, strings.ReplaceAll(stage, string(filepath.Separator), "_")+".onnx")
	if err := res.Model.WriteFile(file); err != nil {
		return r, err
	}
	if st, err := os.Stat(file); err == nil {
		r.ONNXBytes = st.Size()
	}
	if err := ortest.CheckFile(file); err != nil {
		return r, err
	}
	batch := recipe.EvalBatch()
	want, err := model.Logits(context.Background(), m, test, batch)
	if err != nil {
		return r, err
	}
	shape := append([]int{test.N}, m.Spec.InputShape()...) // the model's: the data may hold images [1, 28, 28] for an MLP's [784]
	in := map[string]*npy.Array{"input": {Shape: shape, Data: test.X}}
	got, err := rt.Exec(file, in, ortest.Options{Batch: batch, Opt: o.Opt})
	if err != nil {
		return r, err
	}
	compare(&r, want, got.Outputs["logits"].Data.([]float32), m.Spec.Classes)
	if o.Bench {
		if err := timeBoth(rt, &r, m, test, file); err != nil {
			return r, err
		}
	}
	return r, nil
}

// kind says what an export holds: float, pruned, factored, quantized.
func kind(m *model.Model) string {
	var parts []string
	quantized, pruned, factored := "", false, false
	for _, l := range m.WeightLayers() {
		pruned = pruned || l.Pruned
		factored = factored || l.Rank > 0
		if l.Input != nil && quantized == "" {
			quantized = "int QDQ " + l.Input.Mode
		} else if l.Quant != nil && quantized == "" {
			quantized = "int weights"
		}
	}
	if pruned {
		parts = append(parts, "pruned")
	}
	if factored {
		parts = append(parts, "factored")
	}
	if quantized != "" {
		parts = append(parts, quantized)
	} else {
		parts = append(parts, "float")
	}
	return strings.Join(parts, ", ")
}

func compare(r *Row, want, got []float32, classes int) {
	n := len(want) / classes
	same := 0
	diffs := make([]float64, len(want))
	for i := 0; i < n; i++ {
		w, g := want[i*classes:(i+1)*classes], got[i*classes:(i+1)*classes]
		if argmax(w) == argmax(g) {
			same++
		}
		var peak float64
		for _, v := range w {
			peak = max(peak, math.Abs(float64(v)))
		}
		for c := range w {
			d := math.Abs(float64(w[c]) - float64(g[c]))
			diffs[i*classes+c] = d
			r.Max = max(r.Max, d)
			r.Worst = max(r.Worst, d/max(peak, 1))
		}
	}
	sort.Float64s(diffs)
	r.Median = diffs[len(diffs)/2]
	r.Argmax = float64(same) / float64(n)
	if strings.Contains(r.Kind, "int") {
		r.Pass = r.Argmax >= 0.995 && r.Median <= 2e-3
	} else {
		r.Pass = r.Worst <= 1e-4
	}
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// Verdict is one line on a row.
func Verdict(r Row) string {
	s := fmt.Sprintf("%s: argmax agreement %.4f, median |diff| %.2g, max %.2g", r.Kind, r.Argmax, r.Median, r.Max)
	if r.Pass {
		return s + ": ok"
	}
	return s + ": FAIL"
}

// timeBoth times onnxruntime (median of 200 runs after 20) and shrink's
// inference (package infer; median of as many runs) at batch 1 and 256, one thread each.
func timeBoth(rt *ortest.Runtime, r *Row, m *model.Model, test *data.Split, file string) error {
	gemm.SetThreads(1)
	for i, n := range []int{1, 256} {
		s := test.Slice(0, n)
		x := &npy.Array{Shape: append([]int{n}, m.Spec.InputShape()...), Data: s.X}
		runs := 200
		if n > 1 {
			runs = 50
		}
		res, err := rt.Exec(file, map[string]*npy.Array{"input": x}, ortest.Options{Runs: runs, Warmup: 20, Threads: 1})
		if err != nil {
			return err
		}
		r.ORT[i] = time.Duration(res.Timing.MedianMS * 1e6)
		// shrink's side is package infer, what shrink eval, predict and bench
		// run: integer kernels for static and full-range dynamic int8 layers
		// (a bare eval net runs those in float on fake-quantized values).
		im, err := infer.New(m, infer.Options{MaxBatch: n, Sizes: 1})
		if err != nil {
			return err
		}
		logits := make([]float32, n*im.Classes())
		var ts []time.Duration
		for k := 0; k < runs+20; k++ {
			t0 := time.Now()
			if err := im.PredictInto(logits, s.X[:n*im.InputSize()], n); err != nil {
				return err
			}
			if k >= 20 {
				ts = append(ts, time.Since(t0))
			}
		}
		slices.Sort(ts)
		r.Own[i] = ts[len(ts)/2]
	}
	return nil
}

// Report prints the rows: the checks, or with bench the timing table.
func Report(w io.Writer, rows []Row, bench bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if !bench {
		fmt.Fprintln(tw, "STAGE\tKIND\tONNX BYTES\tARGMAX\tMEDIAN |DIFF|\tMAX |DIFF|\tCHECK")
		for _, r := range rows {
			ok := "ok"
			if !r.Pass {
				ok = "FAIL"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.4f\t%.2g\t%.2g\t%s\n", r.Stage, r.Kind, r.ONNXBytes, r.Argmax, r.Median, r.Max, ok)
		}
		tw.Flush()
		return
	}
	fmt.Fprintln(w, "| stage | kind | onnxruntime batch 1 | shrink batch 1 | onnxruntime batch 256 | shrink batch 256 |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: |")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s (%s/s) | %s (%s/s) |\n", r.Stage, r.Kind,
			us(r.ORT[0]), us(r.Own[0]), ms(r.ORT[1]), rate(r.ORT[1]), ms(r.Own[1]), rate(r.Own[1]))
	}
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
func rate(d time.Duration) string {
	v := 256 / d.Seconds()
	if v >= 1e6 {
		return fmt.Sprintf("%.2fM", v/1e6)
	}
	return fmt.Sprintf("%.0fk", v/1e3)
}
