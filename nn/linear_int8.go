package nn

import (
	"fmt"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/op"
	"github.com/shrink-ml/shrink/internal/qgemm"
)

// RunsInt8: a dynamically quantized linear layer evaluates on integer
// kernels (quantized::linear_dynamic).
func (l *Linear) RunsInt8() bool { return true }

// RunsStaticInt8: so does a statically quantized one (quantized::linear,
// with float output).
func (l *Linear) RunsStaticInt8() bool { return true }

// FusesReLU: a ReLU after an integer linear layer runs in its dequantize
// pass (qgemm.DequantizeReLU).
func (l *Linear) FusesReLU() bool { return true }

// linearInt8Op is y = x Wᵀ + b in eval on integer kernels: x [rows, in] is
// quantized as one tensor (from its own range, or with static parameters),
// the product summed exactly in int32, then scaled back to float and the
// bias added; with relu, max(y, 0) in the same pass.
type linearInt8Op struct {
	op.Base
	bias  bool
	relu  bool
	act   *Int8
	w     *int8Matrix
	scale []float32
	qx    []uint8
	acc   []int32
	out   *tensor.Dense
	// epi is a static layer's dequantize constants, for the bias epiBias
	// (rebuilt if the bias changes).
	epi     *qgemm.Epilogue
	epiBias []float32
}

func (l *Linear) buildInt8(b Builder, x *G.Node, q *Int8) (*G.Node, error) {
	if len(q.Weights) != 1 {
		return nil, fmt.Errorf("linear: %d integer weights, want 1", len(q.Weights))
	}
	w := q.Weights[0]
	o := &linearInt8Op{Base: op.NewBase(b.Name() + ".int8"), act: q, w: int8Pack(w.Q, w.Rows, w.Cols), scale: w.Scale, relu: q.ReLU}
	if bias := b.Param("bias"); bias != nil {
		o.bias = true
		return G.ApplyOp(o, x, bias)
	}
	return G.ApplyOp(o, x)
}

func (o *linearInt8Op) Arity() int {
	if o.bias {
		return 2
	}
	return 1
}

func (o *linearInt8Op) Type() hmType {
	if o.bias {
		return op.Fn(2, 1, 2)
	}
	return op.Fn(2, 2)
}

func (o *linearInt8Op) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x := op.ShapeOf(in[0])
	if x[1] != o.w.k {
		return nil, fmt.Errorf("linear: input has %d features, weight expects %d", x[1], o.w.k)
	}
	return tensor.Shape{x[0], o.w.n}, nil
}

func (o *linearInt8Op) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	rows, k, n := s[0], s[1], o.w.n
	if len(o.qx) != rows*k || len(o.acc) != rows*n {
		o.qx, o.acc = make([]uint8, rows*k), make([]int32, rows*n)
	}
	y := op.Buffer(&o.out, rows, n)
	x := op.F32(in[0])
	var bias []float32
	if o.bias {
		bias = op.F32(in[1])
	}
	var p actParams
	var qmax int32
	if st := o.act.Static; st != nil {
		// Signed codes shift to unsigned ones: q - zp = (q - qmin) - (zp - qmin).
		p, qmax = actParams{Scale: st.Scale, ZeroPoint: st.ZeroPoint - st.QMin}, st.QMax-st.QMin
	} else {
		// Signed codes (inputs not reduce_range) shift to unsigned ones, as
		// static ones do; reduce_range codes start at 0 and stay as they are.
		qmin, qm := o.act.Act.Range()
		p = chooseAct(o.act.Act, 1, rows*k, x, rows*k)
		p.ZeroPoint, qmax = p.ZeroPoint-qmin, qm-qmin
	}
	int8Quantize(rows, k, x, k, p, qmax, o.qx, k)
	int8MatMul(rows, o.qx, k, qmax, o.w, o.acc, n)
	if o.act.Static != nil {
		if o.epi == nil || !slices.Equal(o.epiBias, bias) {
			o.epi, o.epiBias = qgemm.NewEpilogue(qgemm.Params{Scale: p.Scale, ZeroPoint: p.ZeroPoint}, o.w.p, o.scale, bias), slices.Clone(bias)
		}
		o.epi.Dequantize(rows, o.acc, n, op.F32(y), n, o.relu)
		return y, nil
	}
	if o.relu {
		qgemm.DequantizeReLU(rows, o.acc, n, qgemm.Params{Scale: p.Scale, ZeroPoint: p.ZeroPoint}, o.w.p, o.scale, bias, op.F32(y), n)
	} else {
		int8Dequantize(rows, o.acc, n, p, o.w, o.scale, bias, op.F32(y), n, false)
	}
	return y, nil
}

func (o *linearInt8Op) DiffWRT(n int) []bool { return make([]bool, n) }
func (o *linearInt8Op) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%s: integer inference has no gradient", o.Name())
}
