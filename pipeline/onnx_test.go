package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/onnx"
)

// writeONNX writes a two-layer network (fc1 [8, 6], relu, fc2 [3, 8]) as
// torch.onnx.export would, plus extra nodes before the output when bad.
func writeONNX(t *testing.T, dir string, bad bool) {
	t.Helper()
	m := onnx.NewModel(13)
	g := m.Graph
	g.AddInput("input", onnx.TypeFloat, onnx.Batch("N", 6))
	g.AddInitializer(onnx.FloatTensor("fc1.weight", []int64{8, 6}, make([]float32, 48)))
	g.AddInitializer(onnx.FloatTensor("fc1.bias", []int64{8}, make([]float32, 8)))
	g.AddInitializer(onnx.FloatTensor("fc2.weight", []int64{3, 8}, make([]float32, 24)))
	gemm := onnx.AttrInt("transB", 1)
	g.Nodes = append(g.Nodes,
		onnx.Node{Name: "/fc1/Gemm", OpType: "Gemm", Inputs: []string{"input", "fc1.weight", "fc1.bias"}, Outputs: []string{"h"}, Attrs: []onnx.Attribute{gemm}},
		onnx.Node{Name: "/relu/Relu", OpType: "Relu", Inputs: []string{"h"}, Outputs: []string{"r"}},
		onnx.Node{Name: "/fc2/Gemm", OpType: "Gemm", Inputs: []string{"r", "fc2.weight"}, Outputs: []string{"y"}, Attrs: []onnx.Attribute{gemm}})
	out := "y"
	if bad {
		g.Nodes = append(g.Nodes, onnx.Node{Name: "/Softmax", OpType: "Softmax", Inputs: []string{"y"}, Outputs: []string{"p"}})
		out = "p"
	}
	g.Nodes = append(g.Nodes, onnx.Node{Name: "/Identity", OpType: "Identity", Inputs: []string{out}, Outputs: []string{"logits"}})
	g.AddOutput("logits", onnx.TypeFloat, onnx.Batch("N", 3))
	if err := m.WriteFile(filepath.Join(dir, "net.onnx")); err != nil {
		t.Fatal(err)
	}
}

// model: {onnx: FILE} imports the file's network when the recipe loads: its
// layers (with their PyTorch names), input and classes, so stages and data
// are checked against it; problems in the file are the recipe's, at
// model.onnx.
func TestONNXModelSection(t *testing.T) {
	cases := []struct {
		name, model, stages string
		bad, missing        bool
		want                []string // diagnostics; none: loads
	}{
		{name: "imports", model: "{onnx: net.onnx}", stages: "  a: {type: xform}\n"},
		{name: "classes agree", model: "{onnx: net.onnx, classes: 3}", stages: "  a: {type: xform}\n"},
		{name: "classes differ", model: "{onnx: net.onnx, classes: 10}", stages: "  a: {type: xform}\n",
			want: []string{"r.yaml:3:", "model.classes: the ONNX model outputs 3 logits, not 10"}},
		{name: "input differs", model: "{onnx: net.onnx, input: [7]}", stages: "  a: {type: xform}\n",
			want: []string{"model.input: the ONNX model takes samples of shape [6], not [7]"}},
		{name: "unsupported operator", model: "{onnx: net.onnx}", stages: "  a: {type: xform}\n", bad: true,
			want: []string{"model.onnx: ", "net.onnx: node /Softmax (Softmax): no shrink layer type"}},
		{name: "missing file", model: "{onnx: net.onnx}", stages: "  a: {type: xform}\n", missing: true,
			want: []string{"model.onnx: ", "net.onnx: no such file"}},
		{name: "with layers", model: "{onnx: net.onnx, layers: [{name: fc, type: linear, out: 3}]}", stages: "  a: {type: xform}\n",
			want: []string{"give only one of arch, layers and onnx"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if !c.missing {
				writeONNX(t, dir, c.bad)
			}
			src := "version: 1\nname: t\nmodel: " + c.model + "\ndata: {dataset: synthetic, features: 6, classes: 3}\nstages:\n" + c.stages
			file := filepath.Join(dir, "r.yaml")
			if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Load(file, reg, Options{CheckFiles: true})
			if len(c.want) > 0 {
				if err == nil {
					t.Fatal("loaded")
				}
				for _, w := range c.want {
					if !strings.Contains(err.Error(), w) && !strings.Contains(err.Error(), strings.ReplaceAll(w, "r.yaml", file)) {
						t.Errorf("%q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !r.Model.Imported() || r.Model.ONNX != filepath.Join(dir, "net.onnx") {
				t.Fatalf("model %+v: not imported from %s", r.Model, filepath.Join(dir, "net.onnx"))
			}
			if got := strings.Join(r.Model.LayerNames(), " "); got != "fc1 fc2" {
				t.Errorf("weight layers %q, want fc1 fc2", got)
			}
			if r.Model.Classes != 3 || r.Model.Features() != 6 {
				t.Errorf("classes %d, features %d", r.Model.Classes, r.Model.Features())
			}
			// The canonical form is the explicit layer list: checkpoints stand alone.
			if js := r.Model.JSON(); strings.Contains(js, "onnx") || !strings.Contains(js, `"name":"fc1"`) {
				t.Errorf("arch JSON %s", js)
			}
		})
	}
}
