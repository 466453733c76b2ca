package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/op"
	"github.com/shrink-ml/shrink/internal/vec"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "lstm",
		Summary: "nn.LSTM(batch_first=True) over sequences [T, F], returning every step's output [T, H]: weight_ih_l{k} [4H, in], weight_hh_l{k} [4H, H], bias_ih_l{k}, bias_hh_l{k} [4H], gates i, f, g, o",
		New:     func() arch.Layer { return &LSTM{NumLayers: 1, Bias: true} },
	})
}

// LSTM is nn.LSTM(batch_first=True) with zero initial states, returning the
// output sequence (the last layer's hidden state at every step).
type LSTM struct {
	Hidden    int  `json:"hidden" minimum:"1" doc:"hidden size H: features of each step's output"`
	NumLayers int  `json:"num_layers" minimum:"1" maximum:"1000" doc:"stacked LSTM layers: layer k > 0 reads layer k-1's output sequence"`
	Bias      bool `json:"bias" doc:"learnable biases bias_ih_l{k} and bias_hh_l{k}"`
}

// Validate requires hidden.
func (l *LSTM) Validate() error {
	if l.Hidden == 0 {
		return config.Errorf("hidden", "missing: the hidden size (features of each step's output)")
	}
	return nil
}

func (l *LSTM) Shape(in []arch.Shape) (arch.Shape, error) {
	x := in[0]
	if len(x) != 2 {
		return nil, fmt.Errorf("takes sequences [steps, features], not %v (data.layout: sequence gives MNIST images as 28 steps of 28 pixels)", x)
	}
	return arch.Shape{x[0], l.Hidden}, nil
}

// inputSize is layer k's input features.
func (l *LSTM) inputSize(in []arch.Shape, k int) int {
	if k == 0 {
		return in[0][1]
	}
	return l.Hidden
}

// Tensors are PyTorch's state_dict entries, layer by layer.
func (l *LSTM) Tensors(in []arch.Shape) []arch.Tensor {
	g := 4 * l.Hidden
	var ts []arch.Tensor
	for k := 0; k < l.NumLayers; k++ {
		ts = append(ts,
			arch.Tensor{Suffix: fmt.Sprintf("weight_ih_l%d", k), Shape: []int{g, l.inputSize(in, k)}, Role: arch.Weight},
			arch.Tensor{Suffix: fmt.Sprintf("weight_hh_l%d", k), Shape: []int{g, l.Hidden}, Role: arch.Weight})
		if l.Bias {
			ts = append(ts,
				arch.Tensor{Suffix: fmt.Sprintf("bias_ih_l%d", k), Shape: []int{g}, Role: arch.Param},
				arch.Tensor{Suffix: fmt.Sprintf("bias_hh_l%d", k), Shape: []int{g}, Role: arch.Param})
		}
	}
	return ts
}

// MACs are the input and hidden projections of every step.
func (l *LSTM) MACs(in []arch.Shape, out arch.Shape) int64 {
	steps := int64(in[0][0])
	var n int64
	for k := 0; k < l.NumLayers; k++ {
		n += steps * int64(4*l.Hidden) * int64(l.inputSize(in, k)+l.Hidden)
	}
	return n
}

// Caps: torch.ao's quantize_dynamic quantizes nn.LSTM; static quantization and
// QAT do not apply to it.
func (l *LSTM) Caps() arch.Caps { return arch.Caps{Dynamic: true} }

// Init is nn.LSTM's reset_parameters: every tensor from U(±1/sqrt(hidden)),
// in state_dict order.
func (l *LSTM) Init(ts []InitTensor, rng *rand.Rand) {
	bound := float32(1 / math.Sqrt(float64(l.Hidden)))
	for _, t := range ts {
		Uniform(t.Data, bound, rng)
	}
}

// Build stacks one fused op per layer. A layer quantized for integer
// inference (Builder.Int8) runs on integer kernels in eval.
func (l *LSTM) Build(b Builder, in []*G.Node) (*G.Node, error) {
	x := in[0]
	if x.Dims() != 3 {
		return nil, fmt.Errorf("lstm: input %v is not [batch, steps, features]", x.Shape())
	}
	if q := b.Int8(); q != nil {
		return l.buildInt8(b, x, q)
	}
	ws := b.Weights()
	for k := 0; k < l.NumLayers; k++ {
		o := &lstmOp{Base: op.NewBase(fmt.Sprintf("%s.l%d", b.Name(), k)), hidden: l.Hidden, st: &lstmState{}, act: b.ActQuant()}
		args := []*G.Node{x, ws[2*k], ws[2*k+1]}
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

// lstmState is what one layer's forward pass leaves for its backward pass,
// all row-major over (sample, step): row n*T+t.
type lstmState struct {
	n, t, in, h int
	gates       []float32 // [N*T, 4H]: i, f, g, o after their activations
	c, tc       []float32 // [N*T, H]: the cell state and its tanh
	hprev       []float32 // [N*T, H]: the hidden state each step starts from (0 at t = 0)
	dz          []float32 // [N*T, 4H]: the loss's gradient w.r.t. the gates' pre-activations
	bsum        []float32 // [4H]: bias_ih + bias_hh
	zero        []float32 // [H] zeros: the cell state before the first step
	// Fake quantization of the projections' inputs (a dynamically quantized
	// layer computing in float), allocated on first use.
	xq, xin []float32 // [N*T, in]: the quantized input sequence; 1 where x was inside the grid
	hq      []float32 // [N, H]: one step's quantized h_{t-1}, the hidden projection's input
	hpq     []float32 // [N*T, H]: hprev as quantized (0 at t = 0)
	hin     []float32 // [T, N, H]: 1 where h_{t-1} was inside the grid, step by step
}

func (s *lstmState) size(n, t, in, h int) {
	if s.n == n && s.t == t && s.in == in && s.h == h {
		return
	}
	s.n, s.t, s.in, s.h = n, t, in, h
	rows := n * t
	s.gates = make([]float32, rows*4*h)
	s.dz = make([]float32, rows*4*h)
	s.c = make([]float32, rows*h)
	s.tc = make([]float32, rows*h)
	s.hprev = make([]float32, rows*h)
	s.bsum = make([]float32, 4*h)
	s.zero = make([]float32, h)
	s.xq, s.xin, s.hq, s.hpq, s.hin = nil, nil, nil, nil, nil
}

// quantizing sizes the fake quantizers' buffers.
func (s *lstmState) quantizing() {
	if s.xq != nil {
		return
	}
	rows := s.n * s.t
	s.xq, s.xin = make([]float32, rows*s.in), make([]float32, rows*s.in)
	s.hq = make([]float32, s.n*s.h)
	s.hpq, s.hin = make([]float32, rows*s.h), make([]float32, rows*s.h)
}

// lstmOp is one LSTM layer over a whole batch of sequences: inputs x [N, T,
// in], weight_ih [4H, in], weight_hh [4H, H] (and bias_ih, bias_hh [4H]);
// output h [N, T, H]. The input projection of every step is one product
// (x W_ihᵀ over N·T rows), the hidden projection one product per step, as
// PyTorch's CPU LSTM computes them. With act, the input sequence (as a
// whole) and each step's h_{t-1} (over the batch) are fake-quantized before
// their products, as a dynamically quantized LSTM quantizes them.
type lstmOp struct {
	op.Base
	hidden int
	bias   bool
	st     *lstmState
	act    ActQuantizer
	out    *tensor.Dense
}

func (o *lstmOp) Arity() int {
	if o.bias {
		return 5
	}
	return 3
}

func (o *lstmOp) Type() hmType {
	if o.bias {
		return op.Fn(3, 2, 2, 1, 1, 3)
	}
	return op.Fn(3, 2, 2, 3)
}

func (o *lstmOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, wih, whh := op.ShapeOf(in[0]), op.ShapeOf(in[1]), op.ShapeOf(in[2])
	h := o.hidden
	if len(x) != 3 || wih[0] != 4*h || wih[1] != x[2] || whh[0] != 4*h || whh[1] != h {
		return nil, fmt.Errorf("lstm: input %v does not fit weight_ih %v and weight_hh %v of hidden size %d", x, wih, whh, h)
	}
	return tensor.Shape{x[0], x[1], h}, nil
}

func (o *lstmOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	st := o.st
	st.size(s[0], s[1], s[2], o.hidden)
	y := op.Buffer(&o.out, s[0], s[1], o.hidden)
	var bih, bhh []float32
	if o.bias {
		bih, bhh = op.F32(in[3]), op.F32(in[4])
	}
	lstmForward(st, op.F32(in[0]), op.F32(in[1]), op.F32(in[2]), bih, bhh, op.F32(y), o.act)
	return y, nil
}

// lstmForward runs one layer: st sized for N sequences of T steps of in
// features, y [N, T, H] receives the outputs.
func lstmForward(st *lstmState, x, wih, whh, bih, bhh, y []float32, act ActQuantizer) {
	n, t, inF, h := st.n, st.t, st.in, st.h
	g4 := 4 * h
	rows := n * t
	z := st.gates
	if act != nil {
		st.quantizing()
		act.FakeQuantize(x, st.xq, st.xin)
		x = st.xq
	}
	beta := float32(0)
	if bih != nil {
		for j := range st.bsum {
			st.bsum[j] = bih[j] + bhh[j]
		}
		for r := 0; r < rows; r++ {
			copy(z[r*g4:(r+1)*g4], st.bsum)
		}
		beta = 1
	}
	gemm.Sgemm(false, true, rows, g4, inF, 1, x, inF, wih, inF, beta, z, g4)
	for s := 0; s < t; s++ {
		if s > 0 {
			// z[:, s] += h_{s-1} W_hhᵀ, reading h_{s-1} in place (rows T·H apart).
			a, lda := st.hprev[s*h:], t*h
			if act != nil {
				a, lda = st.quantizeStep(act, s), h
			}
			gemm.Sgemm(false, true, n, g4, h, 1, a, lda, whh, h, 1, z[s*g4:], t*g4)
		}
		for i := 0; i < n; i++ {
			r := i*t + s
			cprev, next := st.zero, []float32(nil)
			if s > 0 {
				cprev = st.c[(r-1)*h : r*h]
			}
			if s+1 < t {
				next = st.hprev[(r+1)*h : (r+2)*h]
			}
			lstmCell(z[r*g4:(r+1)*g4], cprev, st.c[r*h:(r+1)*h], st.tc[r*h:(r+1)*h], y[r*h:(r+1)*h], next)
		}
	}
}

// quantizeStep fake-quantizes the hidden states step s starts from, one
// range over the batch as the quantized LSTM measures it each step, and
// returns them as an [N, H] block.
func (st *lstmState) quantizeStep(act ActQuantizer, s int) []float32 {
	n, t, h := st.n, st.t, st.h
	for i := 0; i < n; i++ {
		copy(st.hq[i*h:(i+1)*h], st.hprev[(i*t+s)*h:(i*t+s+1)*h])
	}
	act.FakeQuantize(st.hq, st.hq, st.hin[s*n*h:(s+1)*n*h])
	for i := 0; i < n; i++ {
		copy(st.hpq[(i*t+s)*h:(i*t+s+1)*h], st.hq[i*h:(i+1)*h])
	}
	return st.hq
}

// lstmCell applies one step's gate activations to the pre-activations z
// (i, f, g, o of H values each; overwritten by the activations) and the
// previous cell state: c = f·cprev + i·g, h = o·tanh(c) (vec.LSTMCell).
// hnext, when not nil, receives a copy of h.
func lstmCell(z, cprev, c, tc, h, hnext []float32) {
	vec.LSTMCell(z, cprev, c, tc, h)
	if hnext != nil {
		copy(hnext, h)
	}
}

func (o *lstmOp) DiffWRT(n int) []bool { return op.All(n) }

// SymDiff: one op runs backward through time and yields the gates'
// gradients dz; the input's and each parameter's gradient are products of dz
// (one each, over all steps at once).
func (o *lstmOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	name := o.Name()
	dz, err := G.ApplyOp(&lstmGradOp{Base: op.NewBase(name + ".grad"), st: o.st, act: o.act}, grad, inputs[2])
	if err != nil {
		return nil, err
	}
	dx, err := G.ApplyOp(&lstmGradXOp{Base: op.NewBase(name + ".dx"), st: o.st, act: o.act}, dz, inputs[1])
	if err != nil {
		return nil, err
	}
	dwih, err := G.ApplyOp(&lstmGradWOp{Base: op.NewBase(name + ".dW_ih"), st: o.st, input: true}, dz, inputs[0])
	if err != nil {
		return nil, err
	}
	dwhh, err := G.ApplyOp(&lstmGradWOp{Base: op.NewBase(name + ".dW_hh"), st: o.st}, dz)
	if err != nil {
		return nil, err
	}
	out := G.Nodes{dx, dwih, dwhh}
	if o.bias {
		// bias_ih and bias_hh enter the gates alike: the same gradient, summed
		// once and copied.
		dbih, err := G.ApplyOp(&rowSumOp{Base: op.NewBase(name + ".db_ih"), rank: 3}, dz)
		if err != nil {
			return nil, err
		}
		dbhh, err := G.ApplyOp(&copyOp{Base: op.NewBase(name + ".db_hh")}, dbih)
		if err != nil {
			return nil, err
		}
		out = append(out, dbih, dbhh)
	}
	return out, nil
}

// lstmGradOp is backpropagation through time: from dy [N, T, H] (the loss's
// gradient w.r.t. every step's output) and weight_hh, the gradient w.r.t. the
// gates' pre-activations dz [N, T, 4H], kept in the shared state too.
type lstmGradOp struct {
	op.Base
	st      *lstmState
	act     ActQuantizer
	dh, dc  []float32 // [N, H]: what flows back into step t-1
	dhq     []float32 // [N, H]: dz_t W_hh before the straight-through mask
	out     *tensor.Dense
	outData []float32 // out's backing: st.dz when out was made
}

func (o *lstmGradOp) Arity() int   { return 2 }
func (o *lstmGradOp) Type() hmType { return op.Fn(3, 2, 3) }
func (o *lstmGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := op.ShapeOf(in[0])
	return tensor.Shape{s[0], s[1], 4 * s[2]}, nil
}

func (o *lstmGradOp) Do(in ...G.Value) (G.Value, error) {
	st := o.st
	n, t, h := st.n, st.t, st.h
	g4 := 4 * h
	if o.outData == nil || &o.outData[0] != &st.dz[0] {
		// The output is the state's dz, so the products that follow read it
		// from either place.
		o.out, o.outData = tensor.New(tensor.WithShape(n, t, g4), tensor.WithBacking(st.dz)), st.dz
	}
	if len(o.dh) != n*h {
		o.dh, o.dc, o.dhq = make([]float32, n*h), make([]float32, n*h), make([]float32, n*h)
	}
	dy, whh := op.F32(in[0]), op.F32(in[1])
	clear(o.dh)
	clear(o.dc)
	for s := t - 1; s >= 0; s-- {
		for i := 0; i < n; i++ {
			r := i*t + s
			cprev := st.zero
			if s > 0 {
				cprev = st.c[(r-1)*h : r*h]
			}
			vec.LSTMCellGrad(st.gates[r*g4:(r+1)*g4], cprev, st.tc[r*h:(r+1)*h], dy[r*h:(r+1)*h],
				o.dh[i*h:(i+1)*h], o.dc[i*h:(i+1)*h], st.dz[r*g4:(r+1)*g4])
		}
		if s > 0 {
			// dh_{s-1} = dz_s W_hh, through the fake quantizer's clipped
			// straight-through gradient when there is one.
			if o.act == nil {
				gemm.Sgemm(false, false, n, h, g4, 1, st.dz[s*g4:], t*g4, whh, h, 0, o.dh, h)
				continue
			}
			gemm.Sgemm(false, false, n, h, g4, 1, st.dz[s*g4:], t*g4, whh, h, 0, o.dhq, h)
			mask := st.hin[s*n*h : (s+1)*n*h]
			for j, v := range o.dhq {
				o.dh[j] = v * mask[j]
			}
		}
	}
	return o.out, nil
}

// lstmGradXOp is the input's gradient dz W_ih [N, T, in], through the input
// fake quantizer's straight-through mask when there is one.
type lstmGradXOp struct {
	op.Base
	st  *lstmState
	act ActQuantizer
	out *tensor.Dense
}

func (o *lstmGradXOp) Arity() int   { return 2 }
func (o *lstmGradXOp) Type() hmType { return op.Fn(3, 2, 3) }
func (o *lstmGradXOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, w := op.ShapeOf(in[0]), op.ShapeOf(in[1])
	return tensor.Shape{s[0], s[1], w[1]}, nil
}
func (o *lstmGradXOp) Do(in ...G.Value) (G.Value, error) {
	st := o.st
	rows, inF, g4 := st.n*st.t, st.in, 4*st.h
	dx := op.Buffer(&o.out, st.n, st.t, inF)
	d := op.F32(dx)
	gemm.Sgemm(false, false, rows, inF, g4, 1, op.F32(in[0]), g4, op.F32(in[1]), inF, 0, d, inF)
	if o.act != nil {
		for i, m := range st.xin {
			d[i] *= m
		}
	}
	return dx, nil
}

// lstmGradWOp is a weight's gradient over all steps at once: dzᵀ x for
// weight_ih (input true), dzᵀ h_prev for weight_hh.
type lstmGradWOp struct {
	op.Base
	st    *lstmState
	input bool
	out   *tensor.Dense
}

func (o *lstmGradWOp) Arity() int {
	if o.input {
		return 2
	}
	return 1
}
func (o *lstmGradWOp) Type() hmType {
	if o.input {
		return op.Fn(3, 3, 2)
	}
	return op.Fn(3, 2)
}
func (o *lstmGradWOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := op.ShapeOf(in[0])
	if o.input {
		return tensor.Shape{s[2], op.ShapeOf(in[1])[2]}, nil
	}
	return tensor.Shape{s[2], s[2] / 4}, nil
}
func (o *lstmGradWOp) Do(in ...G.Value) (G.Value, error) {
	st := o.st
	rows, g4 := st.n*st.t, 4*st.h
	if o.input {
		x := op.F32(in[1])
		if st.xq != nil {
			x = st.xq // the forward pass multiplied the quantized input
		}
		dw := op.Buffer(&o.out, g4, st.in)
		gemm.Sgemm(true, false, g4, st.in, rows, 1, op.F32(in[0]), g4, x, st.in, 0, op.F32(dw), st.in)
		return dw, nil
	}
	dw := op.Buffer(&o.out, g4, st.h)
	hp := st.hprev
	if st.hpq != nil {
		hp = st.hpq // the forward pass multiplied the quantized states
	}
	gemm.Sgemm(true, false, g4, st.h, rows, 1, op.F32(in[0]), g4, hp, st.h, 0, op.F32(dw), st.h)
	return dw, nil
}

// copyOp is its input, copied into a buffer of its own (a second parameter's
// gradient equal to a first's).
type copyOp struct {
	op.Base
	out *tensor.Dense
}

func (o *copyOp) Arity() int   { return 1 }
func (o *copyOp) Type() hmType { return op.Fn(1, 1) }
func (o *copyOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *copyOp) Do(in ...G.Value) (G.Value, error) {
	y := op.Buffer(&o.out, op.Dims(in[0])...)
	copy(op.F32(y), op.F32(in[0]))
	return y, nil
}
