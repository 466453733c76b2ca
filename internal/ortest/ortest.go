// Package ortest lets tests run ONNX models in onnxruntime and through ONNX's
// checker, the two judges of what shrink exports.
//
// onnxruntime is the npm package onnxruntime-node, pinned in tools/ort and
// driven by tools/ort/run.js under node; install it with
//
//	cd tools/ort && npm ci --ignore-scripts
//
// (its install script fetches GPU builds, which fails offline; the CPU
// library is in the package). SHRINK_ORT_DIR names another folder holding
// run.js and node_modules. The checker is onnx.checker.check_model with
// full_check from /usr/bin/python3 (apt-get install python3-onnx).
//
// Tests that need a missing tool skip, saying how to install it, unless
// SHRINK_REQUIRE_ORT is set (CI sets it), when they fail instead.
package ortest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shrink-ml/shrink/internal/npy"
)

// Python is the interpreter whose onnx package checks models: Debian's,
// not whatever python3 comes first on PATH.
const Python = "/usr/bin/python3"

// Runtime is onnxruntime-node, found.
type Runtime struct {
	Node string // the node binary
	Dir  string // holds run.js and node_modules/onnxruntime-node
}

// Options tune a run. The zero value runs once on one intra-op thread.
type Options struct {
	Threads int    // intra-op threads; 0 means 1, so tests share the machine's cores politely
	Runs    int    // timed runs after the first (0: no timing)
	Warmup  int    // untimed runs before the timed ones (run.js's default: 1)
	Opt     string // graph optimization level: disabled, basic, extended, all (default)
	// Optimized, when set, is where onnxruntime writes the graph it runs
	// after its optimizations: which fusions happened, which kernels run.
	Optimized string
	// Batch, when set, runs the inputs that many rows at a time and joins
	// the outputs (shrink predict's batches, which dynamic quantization's
	// results depend on).
	Batch int
}

// Timing is run.js's report of the timed runs: milliseconds per run, and
// items per second taking the first input's leading dimension as the batch.
type Timing struct {
	Runs           int     `json:"runs"`
	Warmup         int     `json:"warmup"`
	Threads        int     `json:"threads"`
	Batch          int     `json:"batch"`
	MeanMS         float64 `json:"mean_ms"`
	MedianMS       float64 `json:"median_ms"`
	P90MS          float64 `json:"p90_ms"`
	MinMS          float64 `json:"min_ms"`
	MaxMS          float64 `json:"max_ms"`
	ItemsPerSecond float64 `json:"items_per_second"`
}

// Result is one call of run.js: outputs by name, and the timing when
// Options.Runs asked for one.
type Result struct {
	Version string // onnxruntime's
	Outputs map[string]*npy.Array
	Timing  *Timing
}

// missing skips or, under SHRINK_REQUIRE_ORT, fails the test.
func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("SHRINK_REQUIRE_ORT") != "" {
		t.Fatal(msg + ", which SHRINK_REQUIRE_ORT requires")
	}
	t.Skip(msg + ": skipping")
}

// Dir is the folder run.js and node_modules are looked for in:
// $SHRINK_ORT_DIR, or tools/ort in this repository.
func Dir() string {
	if d := os.Getenv("SHRINK_ORT_DIR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "tools", "ort")
}

// Find locates node and onnxruntime-node, or skips the test.
func Find(t testing.TB) *Runtime {
	t.Helper()
	r, err := Locate()
	if err != nil {
		missing(t, err.Error())
	}
	return r
}

// Locate finds node and onnxruntime-node, for tools outside tests.
func Locate() (*Runtime, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node is not installed (apt-get install nodejs npm, then cd tools/ort && npm ci --ignore-scripts)")
	}
	dir := Dir()
	for _, f := range []string{"run.js", "node_modules/onnxruntime-node/package.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("onnxruntime-node is not installed in %s (cd tools/ort && npm ci --ignore-scripts)", dir)
		}
	}
	return &Runtime{Node: node, Dir: dir}, nil
}

// Exec runs a model on inputs outside a test, in a temporary folder it
// removes.
func (r *Runtime) Exec(model string, inputs map[string]*npy.Array, o Options) (*Result, error) {
	dir, err := os.MkdirTemp("", "ortest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	return r.run(dir, model, inputs, o)
}

// Run runs a model once on inputs and returns its outputs by name.
func Run(t testing.TB, model string, inputs map[string]*npy.Array) map[string]*npy.Array {
	t.Helper()
	return Find(t).Run(t, model, inputs, Options{}).Outputs
}

// Run runs a model on inputs through run.js, failing the test on any error
// (onnxruntime's own message included).
func (r *Runtime) Run(t testing.TB, model string, inputs map[string]*npy.Array, o Options) *Result {
	t.Helper()
	res, err := r.run(t.TempDir(), model, inputs, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// RunErr is Run returning the error, for tests that expect onnxruntime to
// refuse a model.
func (r *Runtime) RunErr(t testing.TB, model string, inputs map[string]*npy.Array, o Options) (*Result, error) {
	t.Helper()
	return r.run(t.TempDir(), model, inputs, o)
}

func (r *Runtime) run(dir, model string, inputs map[string]*npy.Array, o Options) (*Result, error) {
	threads := o.Threads
	if threads == 0 {
		threads = 1
	}
	args := []string{filepath.Join(r.Dir, "run.js"), model, "--out", filepath.Join(dir, "out"), "--threads", fmt.Sprint(threads)}
	if o.Runs > 0 {
		args = append(args, "--runs", fmt.Sprint(o.Runs))
	}
	if o.Warmup > 0 {
		args = append(args, "--warmup", fmt.Sprint(o.Warmup))
	}
	if o.Opt != "" {
		args = append(args, "--opt", o.Opt)
	}
	if o.Optimized != "" {
		args = append(args, "--optimized", o.Optimized)
	}
	if o.Batch > 0 {
		args = append(args, "--batch", fmt.Sprint(o.Batch))
	}
	i := 0
	for name, a := range inputs {
		// Files are numbered: tensor names may hold '/' or ':'.
		p := filepath.Join(dir, fmt.Sprintf("in%d.npy", i))
		i++
		if err := npy.WriteFile(p, a); err != nil {
			return nil, fmt.Errorf("input %q: %w", name, err)
		}
		args = append(args, "--input", name+"="+p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.Node, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("onnxruntime on %s: %v: %s", model, err, strings.TrimSpace(stderr.String()))
	}
	var rep struct {
		Version string `json:"onnxruntime"`
		Outputs map[string]struct {
			File string `json:"file"`
		} `json:"outputs"`
		Timing *Timing `json:"timing"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("run.js printed %q: %w", stdout.String(), err)
	}
	res := &Result{Version: rep.Version, Outputs: map[string]*npy.Array{}, Timing: rep.Timing}
	for name, out := range rep.Outputs {
		a, err := npy.ReadFile(out.File)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", name, err)
		}
		res.Outputs[name] = a
	}
	return res, nil
}

var checker struct {
	once sync.Once
	err  error
}

// CheckErr runs ONNX's checker with full_check (shape inference included)
// on a model file and returns what it reports, or skips when python3-onnx is
// missing.
func CheckErr(t testing.TB, model string) error {
	t.Helper()
	if err := CheckerReady(); err != nil {
		missing(t, err.Error())
	}
	return CheckFile(model)
}

// CheckerReady says whether python3-onnx can be imported.
func CheckerReady() error {
	checker.once.Do(func() {
		if b, err := exec.Command(Python, "-c", "import onnx").CombinedOutput(); err != nil {
			checker.err = fmt.Errorf("%v: %s", err, pythonError(string(b)))
		}
	})
	if checker.err != nil {
		return fmt.Errorf("%s cannot import onnx (apt-get install python3-onnx): %v", Python, checker.err)
	}
	return nil
}

// CheckFile runs ONNX's checker (full_check) on a model file outside a test.
func CheckFile(model string) error {
	if err := CheckerReady(); err != nil {
		return err
	}
	cmd := exec.Command(Python, "-c", "import sys, onnx; onnx.checker.check_model(sys.argv[1], full_check=True)", model)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("onnx checker on %s: %s", model, pythonError(string(b)))
	}
	return nil
}

// Check runs ONNX's checker and fails the test when it finds a problem.
func Check(t testing.TB, model string) {
	t.Helper()
	if err := CheckErr(t, model); err != nil {
		t.Fatal(err)
	}
}

// pythonError keeps the exception of a traceback, from its "...Error: "
// line on, on one line.
func pythonError(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	start := 0
	for i, l := range lines {
		if !strings.HasPrefix(l, " ") && strings.Contains(l, "Error: ") {
			start = i
		}
	}
	var kept []string
	for _, l := range lines[start:] {
		if l = strings.TrimSpace(l); l != "" {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, " ")
}
