package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/op"
)

// QuantizesInputs: an LSTM quantizes its input sequence once and its hidden
// state at every step, inside its op (InputQuantizer).
func (l *LSTM) QuantizesInputs() bool { return true }

// RunsInt8: a dynamically quantized LSTM evaluates on integer kernels.
func (l *LSTM) RunsInt8() bool { return true }

// buildInt8 stacks one integer op per layer, as aten's quantized LSTM
// (QuantizedCellParamsDynamic) runs: per layer, the input projection of every
// step at once, its input quantized as one tensor; then per step the hidden
// projection, h_{t-1} quantized over the batch, added to it; the gates in
// float.
func (l *LSTM) buildInt8(b Builder, x *G.Node, q *Int8) (*G.Node, error) {
	if len(q.Weights) != 2*l.NumLayers {
		return nil, fmt.Errorf("lstm: %d integer weights for %d layers", len(q.Weights), l.NumLayers)
	}
	for k := 0; k < l.NumLayers; k++ {
		wih, whh := q.Weights[2*k], q.Weights[2*k+1]
		o := &lstmInt8Op{Base: op.NewBase(fmt.Sprintf("%s.l%d.int8", b.Name(), k)), hidden: l.Hidden, act: q,
			wih: int8Pack(wih.Q, wih.Rows, wih.Cols), whh: int8Pack(whh.Q, whh.Rows, whh.Cols),
			sih: wih.Scale, shh: whh.Scale}
		args := []*G.Node{x}
		if l.Bias {
			args = append(args, b.Param(fmt.Sprintf("bias_ih_l%d", k)), b.Param(fmt.Sprintf("bias_hh_l%d", k)))
			o.bias = true
		}
		var err error
		if x, err = G.ApplyOp(o, args...); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// lstmInt8Op is one LSTM layer in eval on integer kernels: input x [N, T,
// in] (and bias_ih, bias_hh), output [N, T, H].
type lstmInt8Op struct {
	op.Base
	hidden   int
	bias     bool
	act      *Int8
	wih, whh *int8Matrix
	sih, shh []float32
	// scratch, sized on the first call
	xt    []float32 // [T*N, in] the input, step-major
	qx    []uint8   // [T*N, in] its codes
	qh    []uint8   // [N, H] one step's hidden codes
	acc   []int32   // [int8Rows, 4H] a block's sums
	gates []float32 // [int8Rows, 4H] a block's gates
	h     []float32 // [N, H] the last step's hidden states
	c     []float32 // [N, H] the cell state
	tc    []float32 // [H] tanh of the cell state (scratch)
	zero  []float32 // [H] zeros: the cell state before the first step
	out   *tensor.Dense
}

func (o *lstmInt8Op) Arity() int {
	if o.bias {
		return 3
	}
	return 1
}

func (o *lstmInt8Op) Type() hmType {
	if o.bias {
		return op.Fn(3, 1, 1, 3)
	}
	return op.Fn(3, 3)
}

func (o *lstmInt8Op) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x := op.ShapeOf(in[0])
	if len(x) != 3 || x[2] != o.wih.k {
		return nil, fmt.Errorf("lstm: input %v does not fit weight_ih [%d, %d]", x, o.wih.n, o.wih.k)
	}
	return tensor.Shape{x[0], x[1], o.hidden}, nil
}

// int8Rows is how many samples a step's products and cells take at a time:
// their sums and gates (4H values each) then stay in cache between the
// integer product, the rescaling and the cell.
const int8Rows = 48

func (o *lstmInt8Op) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	n, t, inF, h := s[0], s[1], s[2], o.hidden
	g4 := 4 * h
	rows := n * t
	chunk := min(n, int8Rows)
	if len(o.qx) != rows*inF || len(o.h) != n*h {
		o.xt, o.qx, o.qh = make([]float32, rows*inF), make([]uint8, rows*inF), make([]uint8, n*h)
		o.acc, o.gates = make([]int32, chunk*g4), make([]float32, chunk*g4)
		o.c, o.tc, o.h = make([]float32, n*h), make([]float32, h), make([]float32, n*h)
		o.zero = make([]float32, h)
	}
	y := op.Buffer(&o.out, n, t, h)
	x, yd := op.F32(in[0]), op.F32(y)
	var bih, bhh []float32
	if o.bias {
		bih, bhh = op.F32(in[1]), op.F32(in[2])
	}
	_, qmax := o.act.Act.Range()
	// The input sequence is quantized as one tensor, one set of parameters
	// for every step (the range does not depend on the order); step-major, as
	// aten's time-major layout holds it, so a step's rows are one block.
	for i := 0; i < n; i++ {
		for st := 0; st < t; st++ {
			copy(o.xt[(st*n+i)*inF:(st*n+i+1)*inF], x[(i*t+st)*inF:(i*t+st+1)*inF])
		}
	}
	px := chooseAct(o.act.Act, 1, rows*inF, o.xt, rows*inF)
	int8Quantize(rows, inF, o.xt, inF, px, qmax, o.qx, inF)
	var hr actRange // the range of the hidden states the step computes
	var ph actParams
	for st := 0; st < t; st++ {
		if st > 0 {
			// h_{st-1} of the whole batch, quantized with the range the last
			// step's cells gathered. (h_0 = 0 quantizes to codes 0 whatever
			// its parameters: the first hidden projection is its bias alone.)
			ph = hr.params(o.act.Act)
			int8Quantize(n, h, o.h, h, ph, qmax, o.qh, h)
		}
		hr = actRange{}
		for c0 := 0; c0 < n; c0 += chunk {
			m := min(chunk, n-c0)
			// gates = (x W_ihᵀ + b_ih) + (h W_hhᵀ + b_hh), as aten adds the
			// hidden projection to the precomputed input one.
			z := o.gates[:m*g4]
			int8MatMul(m, o.qx[(st*n+c0)*inF:], inF, qmax, o.wih, o.acc, g4)
			int8Dequantize(m, o.acc, g4, px, o.wih, o.sih, bih, z, g4, false)
			if st == 0 {
				if bhh != nil {
					for i := 0; i < m; i++ {
						row := z[i*g4 : (i+1)*g4]
						for j, b := range bhh {
							row[j] += b
						}
					}
				}
			} else {
				int8MatMul(m, o.qh[c0*h:], h, qmax, o.whh, o.acc, g4)
				int8Dequantize(m, o.acc, g4, ph, o.whh, o.shh, bhh, z, g4, true)
			}
			for i := c0; i < c0+m; i++ {
				cprev := o.zero
				if st > 0 {
					cprev = o.c[i*h : (i+1)*h]
				}
				// c overwrites cprev in place; h_{st-1} is already in qh.
				hi := o.h[i*h : (i+1)*h]
				lstmCell(z[(i-c0)*g4:(i-c0+1)*g4], cprev, o.c[i*h:(i+1)*h], o.tc, hi, nil)
				hr.add(hi)
				r := i*t + st
				copy(yd[r*h:(r+1)*h], hi)
			}
		}
	}
	return y, nil
}

func (o *lstmInt8Op) DiffWRT(n int) []bool { return make([]bool, n) }
func (o *lstmInt8Op) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%s: integer inference has no gradient", o.Name())
}
