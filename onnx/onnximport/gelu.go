package onnximport

import (
	"errors"
	"math"

	"github.com/shrink-ml/shrink/onnx"
)

// geluPart follows the elementwise patterns torch.onnx.export writes for
// activations that have no operator at opset 13:
//
//   - nn.GELU, exact: x·0.5·(1 + erf(x/√2)) as Div, Erf, Add, Mul, Mul;
//   - nn.GELU(approximate="tanh"): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
//     as Mul (x²), Mul (x³), Mul, Add, Mul, Tanh, Add, Mul, Mul;
//   - nn.SiLU: x·sigmoid(x) as Sigmoid then Mul, which turns the sigmoid
//     layer just added into a silu.
//
// The products and sums come in either operand order, and the final 0.5
// may multiply x first. Each step is a part of the pattern; the last adds
// the layer. A part read by anything else is an error there.
func (im *importer) geluPart(n *onnx.Node, ins []*val) error {
	if len(ins) == 0 || ins[0] == nil {
		return errors.New("no input")
	}
	scalar := func(v *val, want float64) bool {
		if v == nil || v.c == nil {
			return false
		}
		f, err := floats(v.c)
		return err == nil && len(f) == 1 && math.Abs(float64(f[0])-want) <= 1e-6*math.Max(1, want)
	}
	// plainAct is an activation that is not itself a part.
	plainAct := func(v *val) bool { return v != nil && v.a != nil && v.part == "" && v.a.view == "" && !v.a.ids }
	partOf := func(v *val, kinds ...string) bool {
		if v == nil {
			return false
		}
		for _, k := range kinds {
			if v.part == k {
				return true
			}
		}
		return false
	}
	part := func(kind string, base *val, first *onnx.Node) {
		im.set(n, 0, &val{a: base.a, part: kind, first: first})
	}
	gelu := func(x *val, first *onnx.Node, tanh bool) error {
		g := *n
		g.Name = first.Name // the module's path: /act/Div
		approx := "none"
		if tanh {
			approx = "tanh"
		}
		_, err := im.addLayer(&g, "gelu", "", map[string]any{"approximate": approx}, []*act{x.a}, nil)
		return err
	}
	// Binary steps: each operand order.
	pairs := [][2]*val{{ins[0], nil}}
	if len(ins) > 1 {
		pairs = [][2]*val{{ins[0], ins[1]}, {ins[1], ins[0]}}
	}
	for _, p := range pairs {
		x, y := p[0], p[1]
		switch n.OpType {
		case "Div":
			if plainAct(x) && x == ins[0] && scalar(y, math.Sqrt2) {
				part("div", x, n)
				return nil
			}
		case "Erf":
			if partOf(x, "div") {
				part("erf", x, x.first)
				return nil
			}
		case "Tanh":
			if partOf(x, "scaled") {
				part("tanh", x, x.first)
				return nil
			}
		case "Add":
			switch {
			case partOf(x, "erf") && scalar(y, 1):
				part("erf1", x, x.first)
				return nil
			case partOf(x, "tanh") && scalar(y, 1):
				part("tanh1", x, x.first)
				return nil
			case plainAct(x) && partOf(y, "c3") && y.a == x.a:
				part("inner", y, y.first)
				return nil
			}
		case "Mul":
			switch {
			case plainAct(x) && y != nil && y.a == x.a && plainAct(y):
				part("sq", x, n)
				return nil
			case plainAct(x) && partOf(y, "sq") && y.a == x.a:
				part("cube", y, y.first)
				return nil
			case partOf(x, "cube") && scalar(y, 0.044715):
				part("c3", x, x.first)
				return nil
			case partOf(x, "inner") && scalar(y, math.Sqrt(2/math.Pi)):
				part("scaled", x, x.first)
				return nil
			case plainAct(x) && scalar(y, 0.5):
				part("half", x, n)
				return nil
			case plainAct(x) && partOf(y, "erf1") && y.a == x.a:
				part("xerf1", y, y.first)
				return nil
			case plainAct(x) && partOf(y, "tanh1") && y.a == x.a:
				part("xtanh1", y, y.first)
				return nil
			case partOf(x, "xerf1", "xtanh1") && scalar(y, 0.5):
				return gelu(x, x.first, x.part == "xtanh1")
			case partOf(x, "half") && partOf(y, "erf1", "tanh1") && y.a == x.a:
				return gelu(x, y.first, y.part == "tanh1")
			case plainAct(x) && plainAct(y) && im.silu(n, x, y):
				return nil
			}
		}
	}
	return errors.New("no shrink layer type for this operator on an activation (shrink reads Mul, Div, Erf and Add of activations only as parts of GELU's and SiLU's forms)")
}

// silu turns the sigmoid layer s just added on x into nn.SiLU when this Mul
// is x·s and the only reader of s.
func (im *importer) silu(n *onnx.Node, x, s *val) bool {
	i := s.a.from
	if i < 0 || i != len(im.layers)-1 {
		return false
	}
	l := im.layers[i]
	if l.typ != "sigmoid" || len(l.inputs) != 1 || l.inputs[0] != x.a.from || im.consumers[l.node.Outputs[0]] != 1 {
		return false
	}
	// The sigmoid's input must be x itself, not another view of its layer.
	if prev := im.vals[l.node.Inputs[0]]; prev == nil || prev.a != x.a {
		return false
	}
	l.typ = "silu"
	delete(im.names, l.name)
	delete(im.layerOf, l.name)
	l.name = im.freeName(l.node, "silu")
	im.names[l.name] = true
	im.layerOf[l.name] = i
	im.set(n, 0, &val{a: s.a})
	return true
}
