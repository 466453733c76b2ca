package onnximport

import (
	"errors"
	"math"

	"github.com/shrink-ml/shrink/onnx"
)

// geluPart follows nn.GELU's exact form as torch.onnx.export writes it
// before opset 20: x·0.5·(1 + erf(x/√2)), as Div, Erf, Add, Mul, Mul (the
// two products in either order). Each step is a part of the pattern; the
// last one adds the gelu layer. A part read by anything else is an error
// there.
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
	plainAct := func(v *val) bool { return v != nil && v.a != nil && v.part == "" && v.a.view == "" }
	part := func(kind string, base *val, first *onnx.Node) {
		im.set(n, 0, &val{a: base.a, part: kind, first: first})
	}
	switch n.OpType {
	case "Div":
		if plainAct(ins[0]) && scalar(ins[1], math.Sqrt2) {
			part("div", ins[0], n)
			return nil
		}
	case "Erf":
		if ins[0].part == "div" {
			part("erf", ins[0], ins[0].first)
			return nil
		}
	case "Add":
		for i := range 2 {
			if ins[i].part == "erf" && scalar(ins[1-i], 1) {
				part("erf1", ins[i], ins[i].first)
				return nil
			}
		}
	case "Mul":
		for i := range 2 {
			x, y := ins[i], ins[1-i]
			switch {
			case plainAct(x) && scalar(y, 0.5):
				part("half", x, n)
				return nil
			case plainAct(x) && y != nil && y.part == "erf1" && y.a == x.a:
				part("xerf1", y, y.first)
				return nil
			case x.part == "xerf1" && scalar(y, 0.5),
				x.part == "half" && y != nil && y.part == "erf1" && y.a == x.a:
				first := x.first
				if y.part == "erf1" {
					first = y.first
				}
				g := *n
				g.Name = first.Name // the module's path: /act/Div
				_, err := im.addLayer(&g, "gelu", "", map[string]any{"approximate": "none"}, []*act{x.a}, nil)
				return err
			}
		}
	}
	return errors.New("no shrink layer type for this operator on an activation (shrink reads Mul, Div and Erf only as parts of GELU's x·0.5·(1 + erf(x/√2)))")
}
