// Command ortcheck exports every checkpoint of a recipe's run to ONNX and
// checks it in onnxruntime against shrink's own logits on the recipe's test
// data, the way `shrink predict` computes them (its batches, in data
// order):
//
//   - ONNX's checker passes on every export;
//   - a float model matches to float32 rounding: every logit within 1e-4 of
//     the row's largest magnitude (at least 1);
//   - a quantized one agrees on the class of at least 99.5% of the samples
//     with a median |logit difference| of at most 2e-3.
//
// With -bench it also times onnxruntime (one thread, batch 1 and 256) and
// shrink's own inference of the same checkpoints (one thread) and prints
// docs/DEPLOY.md's table.
//
//	go run ./tools/ortcheck recipes/quickstart.yaml runs/quickstart
//	go run ./tools/ortcheck -bench -stages train,static recipes/quantize-static.yaml runs/quantize-static
//
// It needs onnxruntime-node (cd tools/ort && npm ci --ignore-scripts) and
// python3-onnx. It exits 1 when a check fails.
package main

import (
	"context"
	"flag"
	"fmt"
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
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/npy"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
	_ "github.com/shrink-ml/shrink/stages/all"
)

func main() {
	bench := flag.Bool("bench", false, "also time onnxruntime and shrink at batch 1 and 256 (one thread each)")
	only := flag.String("stages", "", "comma-separated stage folders to check (default: every checkpoint in the run)")
	keep := flag.String("keep", "", "write the exports to this folder")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: ortcheck [-bench] [-stages a,b] [-keep DIR] RECIPE RUNDIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	ok, err := run(flag.Arg(0), flag.Arg(1), *only, *keep, *bench)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ortcheck:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// row is one checkpoint's check (and timings).
type row struct {
	stage, kind          string
	argmax, median, peak float64
	worst                float64 // float: largest |diff| relative to the row's largest logit
	pass                 bool
	onnxBytes            int64
	ort, own             [2]time.Duration // batch 1, batch 256: median per run
}

func run(recipePath, runDir, only, keep string, bench bool) (bool, error) {
	recipe, err := pipeline.Load(recipePath, stages.Default, pipeline.Options{Env: os.Environ(), CheckFiles: true})
	if err != nil {
		return false, err
	}
	if recipe.Data == nil {
		return false, fmt.Errorf("%s has no data section", recipePath)
	}
	rt, err := ortest.Locate()
	if err != nil {
		return false, err
	}
	ds, err := data.Load(*recipe.Data, recipe.Dir, recipe.Seed)
	if err != nil {
		return false, err
	}
	ckpts, err := checkpoints(runDir, only)
	if err != nil {
		return false, err
	}
	if len(ckpts) == 0 {
		return false, fmt.Errorf("no model.safetensors under %s", runDir)
	}
	tmp, err := os.MkdirTemp("", "ortcheck-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	out := keep
	if out == "" {
		out = tmp
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		return false, err
	}
	var rows []row
	allOK := true
	for _, c := range ckpts {
		r, err := check(rt, recipe, ds.Test, c, runDir, out, bench)
		if err != nil {
			return false, fmt.Errorf("%s: %w", c, err)
		}
		allOK = allOK && r.pass
		rows = append(rows, r)
		fmt.Fprintf(os.Stderr, "%s: %s\n", r.stage, verdict(r))
	}
	report(rows, bench)
	return allOK, nil
}

// checkpoints finds the run's model.safetensors files (every stage, every
// lottery round), by folder relative to the run.
func checkpoints(runDir, only string) ([]string, error) {
	var want []string
	if only != "" {
		want = strings.Split(only, ",")
	}
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

func check(rt *ortest.Runtime, recipe *pipeline.Recipe, test *data.Split, path, runDir, outDir string, bench bool) (row, error) {
	stage, _ := filepath.Rel(runDir, filepath.Dir(path))
	r := row{stage: stage}
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		return r, err
	}
	m, err := model.FromFile(f, &recipe.Model)
	if err != nil {
		return r, err
	}
	r.kind = kind(m)
	res, err := onnxexport.Export(m, onnxexport.Options{Metadata: f.Metadata})
	if err != nil {
		return r, err
	}
	file := filepath.Join(outDir, strings.ReplaceAll(stage, string(filepath.Separator), "_")+".onnx")
	if err := res.Model.WriteFile(file); err != nil {
		return r, err
	}
	if st, err := os.Stat(file); err == nil {
		r.onnxBytes = st.Size()
	}
	if err := ortest.CheckFile(file); err != nil {
		return r, err
	}
	batch := recipe.EvalBatch()
	want, err := model.Logits(context.Background(), m, test, batch)
	if err != nil {
		return r, err
	}
	shape := append([]int{test.N}, test.SampleShape()...)
	in := map[string]*npy.Array{"input": {Shape: shape, Data: test.X}}
	got, err := rt.Exec(file, in, ortest.Options{Batch: batch})
	if err != nil {
		return r, err
	}
	compare(&r, want, got.Outputs["logits"].Data.([]float32), m.Spec.Classes)
	if bench {
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

func compare(r *row, want, got []float32, classes int) {
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
			r.peak = max(r.peak, d)
			r.worst = max(r.worst, d/max(peak, 1))
		}
	}
	sort.Float64s(diffs)
	r.median = diffs[len(diffs)/2]
	r.argmax = float64(same) / float64(n)
	if strings.Contains(r.kind, "int") {
		r.pass = r.argmax >= 0.995 && r.median <= 2e-3
	} else {
		r.pass = r.worst <= 1e-4
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

func verdict(r row) string {
	s := fmt.Sprintf("%s: argmax agreement %.4f, median |diff| %.2g, max %.2g", r.kind, r.argmax, r.median, r.peak)
	if r.pass {
		return s + ": ok"
	}
	return s + ": FAIL"
}

// timeBoth times onnxruntime (median of 200 runs after 20) and shrink's
// eval net (median of as many runs) at batch 1 and 256, one thread each.
func timeBoth(rt *ortest.Runtime, r *row, m *model.Model, test *data.Split, file string) error {
	gemm.SetThreads(1)
	for i, n := range []int{1, 256} {
		s := test.Slice(0, n)
		x := &npy.Array{Shape: append([]int{n}, test.SampleShape()...), Data: s.X}
		runs := 200
		if n > 1 {
			runs = 50
		}
		res, err := rt.Exec(file, map[string]*npy.Array{"input": x}, ortest.Options{Runs: runs, Warmup: 20, Threads: 1})
		if err != nil {
			return err
		}
		r.ort[i] = time.Duration(res.Timing.MedianMS * 1e6)
		net, err := model.Build(m, model.NetOptions{Batch: n, Mode: model.ModeEval})
		if err != nil {
			return err
		}
		copy(net.X, s.X)
		var ts []time.Duration
		for k := 0; k < runs+20; k++ {
			t0 := time.Now()
			if err := net.Run(); err != nil {
				return err
			}
			if k >= 20 {
				ts = append(ts, time.Since(t0))
			}
		}
		slices.Sort(ts)
		r.own[i] = ts[len(ts)/2]
	}
	return nil
}

func report(rows []row, bench bool) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	if !bench {
		fmt.Fprintln(tw, "STAGE\tKIND\tONNX BYTES\tARGMAX\tMEDIAN |DIFF|\tMAX |DIFF|\tCHECK")
		for _, r := range rows {
			ok := "ok"
			if !r.pass {
				ok = "FAIL"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.4f\t%.2g\t%.2g\t%s\n", r.stage, r.kind, r.onnxBytes, r.argmax, r.median, r.peak, ok)
		}
		tw.Flush()
		return
	}
	fmt.Println("| stage | kind | onnxruntime batch 1 | shrink batch 1 | onnxruntime batch 256 | shrink batch 256 |")
	fmt.Println("| --- | --- | ---: | ---: | ---: | ---: |")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s | %s (%s/s) | %s (%s/s) |\n", r.stage, r.kind,
			us(r.ort[0]), us(r.own[0]), ms(r.ort[1]), rate(r.ort[1]), ms(r.own[1]), rate(r.own[1]))
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
