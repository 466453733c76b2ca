package nn

import (
	"fmt"

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
	in    int         // input features
	runs  [][2]int    // with skipped columns: the kept ones, as (first, count)
	qs    []uint8     // the kept columns' codes
	w     *int8Matrix // without the skipped columns
	scale []float32
	qx    []uint8
	acc   []int32
	out   *tensor.Dense
	// epi is a static layer's dequantize constants, for the bias epiBias
	// (rebuilt for another bias slice).
	epi     *qgemm.Epilogue
	epiBias []float32
}

func (l *Linear) buildInt8(b Builder, x *G.Node, q *Int8) (*G.Node, error) {
	if len(q.Weights) != 1 {
		return nil, fmt.Errorf("linear: %d integer weights, want 1", len(q.Weights))
	}
	o := newLinearInt8Op(b.Name()+".int8", q, q.Weights[0], b.Batch())
	if bias := b.Param("bias"); bias != nil {
		o.bias = true
		return G.ApplyOp(o, x, bias)
	}
	return G.ApplyOp(o, x)
}

// newLinearInt8Op packs w for a net of batch rows, leaving out the input
// columns without weights at small batches (skipBatch).
func newLinearInt8Op(name string, q *Int8, w Int8Weight, batch int) *linearInt8Op {
	o := &linearInt8Op{Base: op.NewBase(name), act: q, in: w.Cols, scale: w.Scale, relu: q.ReLU}
	qw, k := w.Q, w.Cols
	if batch <= skipBatch {
		if runs, kept := keptColumns(w.Q, w.Rows, w.Cols); kept > 0 && kept <= w.Cols*9/10 {
			o.runs, k = runs, kept
			qw = make([]int8, 0, w.Rows*kept)
			for j := 0; j < w.Rows; j++ {
				for _, r := range runs {
					qw = append(qw, w.Q[j*w.Cols+r[0]:j*w.Cols+r[0]+r[1]]...)
				}
			}
		}
	}
	o.w = int8Pack(qw, w.Rows, k)
	return o
}

// skipBatch is the largest batch whose nets leave out input columns with
// no weights (at least a tenth of them): at one sample the product is
// bound by reading the weights, and Deep Compression's magnitude pruning
// empties the inputs MNIST's border pixels feed (138 of fc1's 784
// columns in the deep-compression-lenet300 recipe's qat checkpoint). The
// sums are the same integers: the left-out products are zeros. Larger
// batches are bound by the products, where gathering the kept codes of
// every row costs about what it saves.
const skipBatch = 4

// keptColumns returns the runs of columns of the n×k matrix q that hold a
// nonzero value, as (first, count), and how many columns they cover.
func keptColumns(q []int8, n, k int) (runs [][2]int, kept int) {
	for c := 0; c < k; c++ {
		nz := false
		for j := 0; j < n && !nz; j++ {
			nz = q[j*k+c] != 0
		}
		if !nz {
			continue
		}
		if last := len(runs) - 1; last >= 0 && runs[last][0]+runs[last][1] == c {
			runs[last][1]++
		} else {
			runs = append(runs, [2]int{c, 1})
		}
		kept++
	}
	return runs, kept
}

// codePad is the slack after a buffer of codes: qgemm reads rows in
// groups of 4 bytes (up to 3 past k, meeting the weights' zero padding).
const codePad = 4

func sameSlice(a, b []float32) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
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
	if x[1] != o.in {
		return nil, fmt.Errorf("linear: input has %d features, weight expects %d", x[1], o.in)
	}
	return tensor.Shape{x[0], o.w.n}, nil
}

func (o *linearInt8Op) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	rows, k, n := s[0], s[1], o.w.n
	// The codes' buffers run codePad bytes past the last row, so qgemm
	// reads the last row's ragged k group in place instead of copying it.
	if len(o.qx) != rows*k+codePad || len(o.acc) != rows*n {
		o.qx, o.acc = make([]uint8, rows*k+codePad), make([]int32, rows*n)
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
	q, ldq := o.qx, k
	if o.runs != nil {
		kk := o.w.k
		if len(o.qs) != rows*kk+codePad {
			o.qs = make([]uint8, rows*kk+codePad)
		}
		for i := 0; i < rows; i++ {
			dst, src := o.qs[i*kk:(i+1)*kk], o.qx[i*k:(i+1)*k]
			off := 0
			for _, r := range o.runs {
				off += copy(dst[off:], src[r[0]:r[0]+r[1]])
			}
		}
		q, ldq = o.qs, kk
	}
	int8MatMul(rows, q, ldq, qmax, o.w, o.acc, n)
	if o.act.Static != nil {
		// Static layers run only in nets of package infer (NetOptions.
		// StaticInt8), whose model does not change: the bias is the same
		// slice with the same values on every call.
		if o.epi == nil || !sameSlice(o.epiBias, bias) {
			o.epi, o.epiBias = qgemm.NewEpilogue(qgemm.Params{Scale: p.Scale, ZeroPoint: p.ZeroPoint}, o.w.p, o.scale, bias), bias
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
