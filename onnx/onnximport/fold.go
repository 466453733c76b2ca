package onnximport

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shrink-ml/shrink/onnx"
)

// fold evaluates a node that reads no activation: constants, and the
// integer vectors torch.onnx.export computes from shapes (a reshape
// target, an LSTM's zero initial state). Vectors that hold the batch size
// stay symbolic.
func (im *importer) fold(n *onnx.Node, ins []*val) error {
	for i, v := range ins {
		if v != nil && v.zeros != nil {
			switch n.OpType {
			case "Slice", "Gather", "Squeeze", "Unsqueeze", "Reshape", "Transpose", "Expand", "Identity":
				if i == 0 {
					im.set(n, 0, &val{zeros: v.zeros})
					return nil
				}
			}
			return fmt.Errorf("%s of an initial state of zeros: shrink folds only slices of it", n.OpType)
		}
	}
	switch n.OpType {
	case "Constant":
		a, ok := n.Attr("value")
		if !ok || a.Tensor == nil {
			return errors.New("a Constant without a tensor value (value_float and the like are not read)")
		}
		t := *a.Tensor
		im.set(n, 0, &val{c: &t})
		return nil
	case "Identity":
		im.set(n, 0, ins[0])
		return nil
	case "Cast":
		return im.foldCast(n, ins)
	case "ConstantOfShape":
		if err := valueIsZero(n); err != nil {
			return err
		}
		s, err := symOf(ins[0])
		if err != nil {
			return err
		}
		im.set(n, 0, &val{zeros: s})
		return nil
	case "Unsqueeze":
		s, err := symOf(ins[0])
		if err != nil {
			return err
		}
		axes, err := axesOf(n, ins)
		if err != nil {
			return err
		}
		if !scalarVal(ins[0]) || len(axes) != 1 || axes[0] != 0 && axes[0] != -1 {
			return errors.New("Unsqueeze of anything but a scalar to a vector")
		}
		im.set(n, 0, &val{sym: s})
		return nil
	case "Squeeze":
		s, err := symOf(ins[0])
		if err != nil {
			return err
		}
		if len(s) != 1 {
			return errors.New("Squeeze of a vector longer than 1")
		}
		im.set(n, 0, &val{sym: s, c: scalarConst(ins[0])})
		return nil
	case "Concat":
		var out []sdim
		for _, v := range ins {
			s, err := symOf(v)
			if err != nil {
				return err
			}
			out = append(out, s...)
		}
		im.set(n, 0, &val{sym: out})
		return nil
	case "Gather":
		s, err := symOf(ins[0])
		if err != nil {
			return err
		}
		if ins[1] == nil || ins[1].c == nil {
			return errors.New("Gather by indices that are not constant")
		}
		idx, err := ints(ins[1].c)
		if err != nil {
			return err
		}
		var out []sdim
		for _, i := range idx {
			if i < 0 {
				i += int64(len(s))
			}
			if i < 0 || i >= int64(len(s)) {
				return fmt.Errorf("index %d out of a vector of %d", i, len(s))
			}
			out = append(out, s[i])
		}
		v := &val{sym: out}
		if len(ins[1].c.Dims) == 0 {
			v.c = scalarOf(out[0]) // a scalar result, as Unsqueeze expects
		}
		im.set(n, 0, v)
		return nil
	}
	return fmt.Errorf("no folding for %s on constants (shrink folds %s)", n.OpType, "Constant, Identity, Cast, Shape, Gather, Unsqueeze, Squeeze, Concat, ConstantOfShape")
}

func valueIsZero(n *onnx.Node) error {
	a, ok := n.Attr("value")
	if !ok {
		return nil // the default is a float 0
	}
	if a.Tensor == nil {
		return errors.New("ConstantOfShape without a tensor value")
	}
	switch a.Tensor.Type {
	case onnx.TypeFloat, onnx.TypeDouble:
		v, _ := floats(a.Tensor)
		if len(v) == 1 && v[0] == 0 {
			return nil
		}
	case onnx.TypeInt64, onnx.TypeInt32:
		v, _ := ints(a.Tensor)
		if len(v) == 1 && v[0] == 0 {
			return nil
		}
	}
	return errors.New("ConstantOfShape of a value other than 0: shrink folds zero initial states only")
}

func (im *importer) foldCast(n *onnx.Node, ins []*val) error {
	to, _ := n.Attr("to")
	v := ins[0]
	switch onnx.DataType(to.Int) {
	case onnx.TypeInt64, onnx.TypeInt32:
		if v.sym != nil {
			im.set(n, 0, v)
			return nil
		}
		if v.c != nil {
			if is, err := ints(v.c); err == nil {
				im.set(n, 0, &val{c: onnx.Int64Tensor(v.c.Name, v.c.Dims, is)})
				return nil
			}
		}
	case onnx.TypeFloat:
		if v.c != nil {
			if f, err := floats(v.c); err == nil {
				im.set(n, 0, &val{c: onnx.FloatTensor(v.c.Name, v.c.Dims, f)})
				return nil
			}
		}
	}
	return fmt.Errorf("Cast to %s of this value", onnx.DataType(to.Int))
}

// symOf reads a value as an integer vector: a constant, or one computed
// from shapes.
func symOf(v *val) ([]sdim, error) {
	if v == nil {
		return nil, errors.New("a missing input")
	}
	if v.sym != nil {
		return v.sym, nil
	}
	if v.c != nil {
		is, err := ints(v.c)
		if err != nil {
			return nil, err
		}
		if len(v.c.Dims) > 1 {
			return nil, fmt.Errorf("tensor %q is not a vector", v.c.Name)
		}
		out := make([]sdim, len(is))
		for i, x := range is {
			out[i] = sdim{n: x}
		}
		return out, nil
	}
	return nil, errors.New("a value that is neither constant nor computed from shapes")
}

// scalarVal reports whether v is a scalar (a constant of no dims, or a
// gathered element).
func scalarVal(v *val) bool {
	return v.c != nil && len(v.c.Dims) == 0
}

func scalarConst(v *val) *onnx.Tensor {
	if v.c != nil {
		return &onnx.Tensor{Name: v.c.Name, Type: v.c.Type, Dims: nil, Int64: v.c.Int64, Int32: v.c.Int32}
	}
	return nil
}

// scalarOf marks a gathered element as a scalar: a known value stays one,
// the batch size gets a placeholder only its scalar shape matters for.
func scalarOf(d sdim) *onnx.Tensor {
	return onnx.Int64Tensor("", nil, []int64{d.n})
}

func symString(s []sdim) string {
	parts := make([]string, len(s))
	for i, d := range s {
		if d.batch {
			parts[i] = "N"
		} else {
			parts[i] = fmt.Sprint(d.n)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
