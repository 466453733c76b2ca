package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/ortcheck"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
)

// TestMain lets scripts run shrink in-process as a command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"shrink": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scripts in testdata/script: real runs on small
// synthetic recipes, checked through the files they leave.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "../../testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("SHRINK_GEMM", os.Getenv("SHRINK_GEMM"))
			// The .npy fixtures numpy wrote (data/testdata/npy/make_fixtures.py).
			npy, err := filepath.Abs(filepath.Join("..", "..", "data", "testdata", "npy"))
			env.Setenv("NPY", npy)
			if err != nil {
				return err
			}
			// The torch.onnx.export fixtures (onnx/onnximport/testdata).
			fix, err := filepath.Abs(filepath.Join("..", "..", "onnx", "onnximport", "testdata"))
			if err != nil {
				return err
			}
			env.Setenv("ONNXFIX", fix)
			// The tiny MNIST cut as IDX files (testdata/data).
			tiny, err := filepath.Abs(filepath.Join("..", "..", "testdata", "data"))
			env.Setenv("TINY", tiny)
			if err != nil {
				return err
			}
			testdata, err := filepath.Abs("../../testdata")
			env.Setenv("TESTDATA", testdata) // fixtures too binary for a txtar
			return err
		},
		Condition: scriptCondition,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"json":     cmdJSON,
			"waitfor":  cmdWaitFor,
			"flipbyte": cmdFlipByte,
			"ortcheck": cmdORTCheck,
		},
	})
}

// scriptCondition answers [fashion] (Fashion-MNIST is installed) and [ort]
// (onnxruntime-node and the ONNX checker are): a script skips without them,
// unless SHRINK_REQUIRE_FASHION=1 or SHRINK_REQUIRE_ORT (CI) makes that an
// error.
func scriptCondition(cond string) (bool, error) {
	switch cond {
	case "fashion":
		_, err := data.FindFashionMNIST()
		if err != nil && os.Getenv("SHRINK_REQUIRE_FASHION") == "1" {
			return false, fmt.Errorf("SHRINK_REQUIRE_FASHION=1 but Fashion-MNIST is not available: %v", err)
		}
		return err == nil, nil
	case "ort":
		_, err := ortest.Locate()
		if err == nil {
			err = ortest.CheckerReady()
		}
		if err != nil && os.Getenv("SHRINK_REQUIRE_ORT") != "" {
			return false, fmt.Errorf("SHRINK_REQUIRE_ORT is set but %v", err)
		}
		return err == nil, nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

// cmdORTCheck exports every checkpoint of a run to ONNX and checks it in
// onnxruntime against shrink's logits (internal/ortcheck): ortcheck
// [-float-bias] RECIPE RUNDIR.
func cmdORTCheck(ts *testscript.TestScript, neg bool, args []string) {
	var o ortcheck.Options
	if len(args) > 0 && args[0] == "-float-bias" {
		o.FloatBias, args = true, args[1:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: ortcheck [-float-bias] RECIPE RUNDIR")
	}
	recipe, err := pipeline.Load(ts.MkAbs(args[0]), stages.Default, pipeline.Options{CheckFiles: true})
	ts.Check(err)
	var log strings.Builder
	o.Log = &log
	rows, ok, err := ortcheck.Run(recipe, ts.MkAbs(args[1]), o)
	ts.Check(err)
	ts.Logf("%s", log.String())
	if ok == neg {
		ts.Fatalf("ortcheck: %d checkpoints, all passed: %v", len(rows), ok)
	}
}

// cmdWaitFor waits until a file matching a glob exists: waitfor GLOB [SECONDS].
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: waitfor GLOB [SECONDS]")
	}
	limit := 60 * time.Second
	if len(args) > 1 {
		s, _ := strconv.Atoi(args[1])
		limit = time.Duration(s) * time.Second
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(ts.MkAbs(args[0])); len(m) > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	ts.Fatalf("no file matches %s after %v", args[0], limit)
}

// cmdFlipByte inverts one byte in the middle of a file: flipbyte FILE, where
// FILE may be a glob matching one file.
func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	matches, _ := filepath.Glob(ts.MkAbs(args[0]))
	if len(matches) != 1 {
		ts.Fatalf("flipbyte: %s matches %d files, want 1", args[0], len(matches))
	}
	path := matches[0]
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		ts.Fatalf("flipbyte: %v", err)
	}
	b[len(b)/2] ^= 0xff
	ts.Check(os.WriteFile(path, b, 0o644))
}

// cmdJSON checks a value in a JSON file: json FILE PATH OP [VALUE], where PATH is
// dotted (stages.0.status), OP is == (string form equal), != , exists, or > (number).
func cmdJSON(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 {
		ts.Fatalf("usage: json FILE PATH OP [VALUE]")
	}
	var v any
	if err := json.Unmarshal([]byte(ts.ReadFile(args[0])), &v); err != nil {
		ts.Fatalf("%s: %v", args[0], err)
	}
	for _, key := range strings.Split(args[1], ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[key]
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(x) {
				ts.Fatalf("%s: no index %s", args[1], key)
			}
			v = x[i]
		default:
			v = nil
		}
	}
	got := fmt.Sprint(v)
	var ok bool
	switch args[2] {
	case "exists":
		ok = v != nil
	case "==":
		ok = len(args) == 4 && got == args[3]
	case "!=":
		ok = len(args) == 4 && got != args[3]
	case ">":
		want, _ := strconv.ParseFloat(args[3], 64)
		f, isNum := v.(float64)
		ok = isNum && f > want
	default:
		ts.Fatalf("unknown op %s", args[2])
	}
	if ok == neg {
		ts.Fatalf("json %s %s: got %s", args[0], strings.Join(args[1:], " "), got)
	}
}
