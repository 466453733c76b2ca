package ortest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/internal/npy"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/onnx"
)

// identity writes a model passing a float32 and an int64 input through,
// under names that are not file names.
func identity(t *testing.T) string {
	t.Helper()
	m := onnx.NewModel(13)
	g := m.Graph
	g.AddInput("x/0:a", onnx.TypeFloat, onnx.Batch("N", 3))
	g.AddInput("ids", onnx.TypeInt64, onnx.Batch("N"))
	g.AddNode("Identity", []string{"x/0:a"}, []string{"y/0:a"})
	g.AddNode("Identity", []string{"ids"}, []string{"ids_out"})
	g.AddOutput("y/0:a", onnx.TypeFloat, onnx.Batch("N", 3))
	g.AddOutput("ids_out", onnx.TypeInt64, onnx.Batch("N"))
	path := filepath.Join(t.TempDir(), "identity.onnx")
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunPassesDataThrough(t *testing.T) {
	model := identity(t)
	ortest.Check(t, model)
	x := &npy.Array{Shape: []int{2, 3}, Data: []float32{1, -2.5, 3e-8, 4, 5, -6}}
	ids := &npy.Array{Shape: []int{2}, Data: []int64{-1 << 60, 7}}
	r := ortest.Find(t)
	res := r.Run(t, model, map[string]*npy.Array{"x/0:a": x, "ids": ids}, ortest.Options{Runs: 3})
	if res.Version != "1.31.1" {
		t.Errorf("onnxruntime %q, want the pinned 1.31.1", res.Version)
	}
	if y := res.Outputs["y/0:a"]; y == nil || !reflect.DeepEqual(y, x) {
		t.Errorf("y = %+v, want %+v", y, x)
	}
	if got := res.Outputs["ids_out"]; got == nil || !reflect.DeepEqual(got, ids) {
		t.Errorf("ids_out = %+v, want %+v", got, ids)
	}
	if tm := res.Timing; tm == nil || tm.Runs != 3 || tm.Batch != 2 || tm.Threads != 1 || tm.MeanMS <= 0 || tm.ItemsPerSecond <= 0 {
		t.Errorf("timing %+v, want 3 runs at batch 2 on 1 thread", tm)
	}
}

// With Batch, the inputs run a few rows at a time and the outputs are
// joined: a batch-wide reduction (ReduceMax, as dynamic quantization takes
// its range) sees each batch alone.
func TestRunInBatches(t *testing.T) {
	m := onnx.NewModel(13)
	g := m.Graph
	g.AddInput("x", onnx.TypeFloat, onnx.Batch("N", 2))
	g.AddNode("ReduceMax", []string{"x"}, []string{"peak"}, onnx.AttrInt("keepdims", 0))
	g.AddNode("Sub", []string{"x", "peak"}, []string{"y"})
	g.AddOutput("y", onnx.TypeFloat, onnx.Batch("N", 2))
	path := filepath.Join(t.TempDir(), "peak.onnx")
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	x := &npy.Array{Shape: []int{5, 2}, Data: []float32{1, 2, 3, 4, 10, 0, 0, 0, 7, 1}}
	r := ortest.Find(t)
	for _, c := range []struct {
		batch int
		want  []float32
	}{
		{0, []float32{-9, -8, -7, -6, 0, -10, -10, -10, -3, -9}},
		{2, []float32{-3, -2, -1, 0, 0, -10, -10, -10, 0, -6}},
		{4, []float32{-9, -8, -7, -6, 0, -10, -10, -10, 0, -6}},
	} {
		res, err := r.Exec(path, map[string]*npy.Array{"x": x}, ortest.Options{Batch: c.batch})
		if err != nil {
			t.Fatal(err)
		}
		if y := res.Outputs["y"]; y == nil || !reflect.DeepEqual(y.Shape, []int{5, 2}) || !reflect.DeepEqual(y.Data, c.want) {
			t.Errorf("batch %d: y = %+v, want %v", c.batch, y, c.want)
		}
	}
}

func TestRunReportsOnnxruntimeErrors(t *testing.T) {
	model := identity(t)
	r := ortest.Find(t)
	x := &npy.Array{Shape: []int{2, 4}, Data: make([]float32, 8)} // 4 columns where the model says 3
	ids := &npy.Array{Shape: []int{2}, Data: []int64{1, 2}}
	_, err := r.RunErr(t, model, map[string]*npy.Array{"x/0:a": x, "ids": ids}, ortest.Options{})
	if err == nil || !strings.Contains(err.Error(), "x/0:a") {
		t.Errorf("got %v, want onnxruntime's complaint about input x/0:a", err)
	}
	_, err = r.RunErr(t, model, map[string]*npy.Array{"x/0:a": x}, ortest.Options{})
	if err == nil || !strings.Contains(err.Error(), "no --input for ids") {
		t.Errorf("got %v, want a missing-input error", err)
	}
}

func TestCheckerRejects(t *testing.T) {
	// Relu has no attribute "alpha": the checker knows, our structural
	// validation does not.
	m := onnx.NewModel(13)
	m.Graph.AddInput("x", onnx.TypeFloat, onnx.Shape(2))
	m.Graph.AddNode("Relu", []string{"x"}, []string{"y"}, onnx.AttrFloat("alpha", 0.1))
	m.Graph.AddOutput("y", onnx.TypeFloat, onnx.Shape(2))
	path := filepath.Join(t.TempDir(), "bad.onnx")
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if err := ortest.CheckErr(t, path); err == nil || !strings.Contains(err.Error(), "alpha") {
		t.Errorf("checker said %v, want a complaint about alpha", err)
	}
}

// TestMissingTools runs this test binary again with the tools out of reach,
// to see the skip message, and the failure SHRINK_REQUIRE_ORT turns it into.
func TestMissingTools(t *testing.T) {
	if os.Getenv("ORTEST_CHILD") != "" {
		ortest.Find(t)
		t.Log("found")
		return
	}
	for _, tt := range []struct {
		require string
		fail    bool
		want    string
	}{
		{"", false, "--- SKIP"},
		{"1", true, "which SHRINK_REQUIRE_ORT requires"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingTools$", "-test.v")
		cmd.Env = append(os.Environ(), "ORTEST_CHILD=1", "SHRINK_ORT_DIR="+t.TempDir(), "SHRINK_REQUIRE_ORT="+tt.require)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tt.fail || !strings.Contains(string(out), tt.want) || !strings.Contains(string(out), "cd tools/ort && npm ci --ignore-scripts") {
			t.Errorf("SHRINK_REQUIRE_ORT=%q: exit %v, output:\n%s\nwant %q and the install command", tt.require, err, out, tt.want)
		}
	}
}
