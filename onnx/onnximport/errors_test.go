package onnximport_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/onnx"
	"github.com/shrink-ml/shrink/onnx/onnximport"
)

// tiny is a Gemm from input [N, 4] to logits [N, 3], to which a case adds
// nodes between "h" and "logits" (edit returns the value logits reads).
func tiny(edit func(g *onnx.Graph) string) *onnx.Model {
	m := onnx.NewModel(13)
	g := m.Graph
	g.AddInput("input", onnx.TypeFloat, onnx.Batch("N", 4))
	g.AddInitializer(onnx.FloatTensor("fc.weight", []int64{3, 4}, make([]float32, 12)))
	g.AddInitializer(onnx.FloatTensor("fc.bias", []int64{3}, make([]float32, 3)))
	g.Nodes = append(g.Nodes, onnx.Node{Name: "/fc/Gemm", OpType: "Gemm", Inputs: []string{"input", "fc.weight", "fc.bias"}, Outputs: []string{"h"}, Attrs: []onnx.Attribute{onnx.AttrInt("transB", 1)}})
	out := "h"
	if edit != nil {
		out = edit(g)
	}
	g.Nodes = append(g.Nodes, onnx.Node{Name: "/out/Identity", OpType: "Identity", Inputs: []string{out}, Outputs: []string{"logits"}})
	g.AddOutput("logits", onnx.TypeFloat, onnx.Batch("N", 3))
	return m
}

func node(g *onnx.Graph, name, op string, ins []string, out string, attrs ...onnx.Attribute) string {
	g.Nodes = append(g.Nodes, onnx.Node{Name: name, OpType: op, Inputs: ins, Outputs: []string{out}, Attrs: attrs})
	return out
}

// Each problem is an error naming the node and its operator (or the value
// or tensor at fault) and saying what shrink does instead.
func TestImportErrors(t *testing.T) {
	cases := []struct {
		name  string
		model *onnx.Model
		want  []string
	}{
		{"softmax", tiny(func(g *onnx.Graph) string {
			return node(g, "/Softmax", "Softmax", []string{"h"}, "p", onnx.AttrInt("axis", 1))
		}), []string{"node /Softmax (Softmax)", "no shrink layer type", "Gemm"}},
		{"clip to [-1, 1]", tiny(func(g *onnx.Graph) string {
			g.AddInitializer(onnx.FloatTensor("lo", nil, []float32{-1}))
			g.AddInitializer(onnx.FloatTensor("hi", nil, []float32{1}))
			return node(g, "/act/Clip", "Clip", []string{"h", "lo", "hi"}, "c")
		}), []string{"node /act/Clip (Clip)", "Clip to [-1, 1]", "ReLU6"}},
		// FuzzImport: handlers read inputs ONNX requires without checking
		// they were given (a constant Identity of none panicked).
		{"identity of nothing", tiny(func(g *onnx.Graph) string {
			return node(g, "/Identity", "Identity", nil, "k")
		}), []string{"node /Identity (Identity)", "requires its first 1"}},
		{"gemm without weight", tiny(func(g *onnx.Graph) string {
			return node(g, "/fc2/Gemm", "Gemm", []string{"h", ""}, "g")
		}), []string{"node /fc2/Gemm (Gemm)", "requires its first 2"}},
		{"computed weight", tiny(func(g *onnx.Graph) string {
			return node(g, "/fc2/MatMul", "MatMul", []string{"h", "h"}, "mm")
		}), []string{"node /fc2/MatMul (MatMul)", "input 1 is an activation too"}},
		{"a constant added to a Gemm", tiny(func(g *onnx.Graph) string {
			g.AddInitializer(onnx.FloatTensor("shift", []int64{3}, []float32{1, 2, 3}))
			return node(g, "/Add", "Add", []string{"h", "shift"}, "s")
		}), []string{"node /Add (Add)", "not a MatMul's"}},
		{"unequal pads", func() *onnx.Model {
			m := onnx.NewModel(13)
			g := m.Graph
			g.AddInput("input", onnx.TypeFloat, onnx.Batch("N", 1, 4, 4))
			g.AddInitializer(onnx.FloatTensor("c.weight", []int64{2, 1, 3, 3}, make([]float32, 18)))
			node(g, "/c/Conv", "Conv", []string{"input", "c.weight"}, "y", onnx.AttrInts("pads", 0, 0, 1, 1))
			node(g, "/Flatten", "Flatten", []string{"y"}, "logits")
			g.AddOutput("logits", onnx.TypeFloat, onnx.Batch("N", 8))
			return m
		}(), []string{"node /c/Conv (Conv)", "pads [0 0 1 1]"}},
		{"two inputs", func() *onnx.Model {
			m := tiny(nil)
			m.Graph.AddInput("mask", onnx.TypeFloat, onnx.Batch("N", 4))
			return m
		}(), []string{"2 inputs", "one input"}},
		{"fixed sizes", func() *onnx.Model {
			m := tiny(nil)
			m.Graph.Inputs[0].Shape = []onnx.Dim{{Param: "N"}, {Param: "F"}}
			return m
		}(), []string{`input "input" has shape [N, F]`, "fixed size"}},
		{"reshape to images", tiny(func(g *onnx.Graph) string {
			g.AddInitializer(onnx.Int64Tensor("shape", []int64{3}, []int64{-1, 1, 3}))
			return node(g, "/Reshape", "Reshape", []string{"h", "shape"}, "r")
		}), []string{"node /Reshape (Reshape)", "to flat vectors only"}},
		{"logits not from layers", func() *onnx.Model {
			m := onnx.NewModel(13)
			g := m.Graph
			g.AddInput("input", onnx.TypeFloat, onnx.Batch("N", 4))
			g.AddInitializer(onnx.FloatTensor("c", []int64{1, 3}, make([]float32, 3)))
			node(g, "/Identity", "Identity", []string{"c"}, "logits")
			g.AddOutput("logits", onnx.TypeFloat, onnx.Batch("N", 3))
			return m
		}(), []string{`output "logits" is not computed from the input`}},
		{"anonymous weight, unnamed node", func() *onnx.Model {
			m := onnx.NewModel(13)
			g := m.Graph
			g.AddInput("input", onnx.TypeFloat, onnx.Batch("N", 4))
			g.AddInitializer(onnx.FloatTensor("onnx::Gemm_3", []int64{3, 4}, make([]float32, 12)))
			node(g, "Gemm_0", "Gemm", []string{"input", "onnx::Gemm_3"}, "logits", onnx.AttrInt("transB", 1))
			g.AddOutput("logits", onnx.TypeFloat, onnx.Batch("N", 3))
			return m
		}(), []string{"node Gemm_0 (Gemm)", `"onnx::Gemm_3"`, "module path"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.model.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "bad.onnx")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = onnximport.ReadFile(path)
			if err == nil {
				t.Fatal("imported")
			}
			for _, w := range append(c.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// The fixtures' models import; their bytes, mutated, never crash the
// importer (every error is an error).
func FuzzImport(f *testing.F) {
	for _, name := range []string{"resnet8_bn.onnx", "lstm2.onnx"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b)
		}
	}
	for _, name := range []string{"convnet.onnx", "lstm.onnx"} {
		if b, err := os.ReadFile(filepath.Join("..", "testdata", "torch", name)); err == nil {
			f.Add(b)
		}
	}
	if b, err := tiny(nil).Marshal(); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := onnx.Parse(b)
		if err != nil {
			return
		}
		res, err := onnximport.Import(m)
		if err != nil {
			return
		}
		if _, err := res.Spec.Graph(); err != nil {
			t.Fatalf("an import whose spec does not expand: %v", err)
		}
	})
}
