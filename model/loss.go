package model

import (
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Ignore is the label of a padding row: it adds nothing to the loss or gradients,
// like PyTorch's ignore_index. Batches shorter than the graph's are padded with it.
const Ignore = -1

// Loss is the training objective: cross-entropy, or with a teacher the
// distillation loss alpha*CE + (1-alpha)*KL(softmax(t/T) || softmax(s/T))*T^2.
type Loss struct {
	Distill     bool
	Temperature float64
	Alpha       float64
}

// LossValue is one batch's loss and its parts.
type LossValue struct {
	Loss, CE, KL float64 // KL already times T^2
	Rows         int     // rows that counted (labels not Ignore)
}

// Compute evaluates the loss over rows x classes logits (labels as float32 class
// indices, Ignore to skip a row; teacher nil unless distilling) and writes
// d loss / d logits into grad (nil to skip). Softmaxes use log-sum-exp in float64.
func (l Loss) Compute(logits, teacher, labels []float32, classes int, grad []float32) LossValue {
	rows := len(labels)
	n := 0
	for _, y := range labels {
		if y >= 0 {
			n++
		}
	}
	if grad != nil {
		clear(grad)
	}
	v := LossValue{Rows: n}
	if n == 0 {
		return v
	}
	inv := 1 / float64(n)
	alpha, T := 1.0, 1.0
	if l.Distill {
		alpha, T = l.Alpha, l.Temperature
	}
	var p, ps, pt [64]float64 // softmax(s), softmax(s/T), softmax(t/T); classes <= 64 on the stack
	probs := func(n int) []float64 {
		if n <= len(p) {
			return nil
		}
		return make([]float64, n)
	}
	bufP, bufS, bufT := probs(classes), probs(classes), probs(classes)
	sp, sps, spt := pick(p[:], bufP, classes), pick(ps[:], bufS, classes), pick(pt[:], bufT, classes)
	for r := 0; r < rows; r++ {
		y := int(labels[r])
		if y < 0 {
			continue
		}
		s := logits[r*classes : (r+1)*classes]
		lse := softmax(s, 1, sp)
		ce := lse - float64(s[y])
		v.CE += ce
		var kl float64
		if l.Distill {
			t := teacher[r*classes : (r+1)*classes]
			lseS := softmax(s, T, sps)
			lseT := softmax(t, T, spt)
			for c := 0; c < classes; c++ {
				if spt[c] > 0 {
					logPt := float64(t[c])/T - lseT
					logPs := float64(s[c])/T - lseS
					kl += spt[c] * (logPt - logPs)
				}
			}
			v.KL += kl * T * T
		}
		if grad != nil {
			g := grad[r*classes : (r+1)*classes]
			for c := 0; c < classes; c++ {
				d := alpha * sp[c]
				if c == y {
					d -= alpha
				}
				if l.Distill {
					d += (1 - alpha) * T * (sps[c] - spt[c])
				}
				g[c] = float32(d * inv)
			}
		}
	}
	v.CE *= inv
	v.KL *= inv
	v.Loss = alpha*v.CE + (1-alpha)*v.KL
	return v
}

func pick(stack, heap []float64, n int) []float64 {
	if heap != nil {
		return heap
	}
	return stack[:n]
}

// softmax writes softmax(x/T) into p and returns log(sum(exp(x/T))).
func softmax(x []float32, T float64, p []float64) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v)/T)
	}
	var sum float64
	for i, v := range x {
		e := math.Exp(float64(v)/T - m)
		p[i] = e
		sum += e
	}
	for i := range p {
		p[i] /= sum
	}
	return m + math.Log(sum)
}

// lossOp is the scalar training loss of logits (and, when distilling, teacher
// logits: a third input). It computes the gradient in the same pass and hands
// it to a scaledGradOp.
type lossOp struct {
	opBase
	loss   Loss
	last   LossValue
	grad   *tensor.Dense
	scalar G.F32
}

func (o *lossOp) Arity() int {
	if o.loss.Distill {
		return 3
	}
	return 2
}

func (o *lossOp) Type() hm.Type {
	if o.loss.Distill {
		return hm.NewFnType(tensorOf(2), tensorOf(1), tensorOf(2), tA)
	}
	return hm.NewFnType(tensorOf(2), tensorOf(1), tA)
}

func (o *lossOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.ScalarShape(), nil }

func (o *lossOp) Do(in ...G.Value) (G.Value, error) {
	s := dims(in[0])
	g := buffer(&o.grad, s...)
	var teacher []float32
	if o.loss.Distill {
		teacher = f32(in[2])
	}
	o.last = o.loss.Compute(f32(in[0]), teacher, f32(in[1]), s[1], f32(g))
	o.scalar = G.F32(o.last.Loss)
	return &o.scalar, nil
}

func (o *lossOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	d[0] = true
	return d
}

func (o *lossOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&scaledGradOp{opBase: newBase("lossGrad"), src: &o.grad}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	out := make(G.Nodes, len(inputs))
	out[0] = d
	return out, nil
}

// scaledGradOp passes on a gradient its forward op already computed (src, the
// forward op's buffer), times the incoming gradient of the scalar loss.
type scaledGradOp struct {
	opBase
	src *(*tensor.Dense)
	out *tensor.Dense
}

func (o *scaledGradOp) Arity() int    { return 2 }
func (o *scaledGradOp) Type() hm.Type { return hm.NewFnType(tensorOf(2), tA, tensorOf(2)) }
func (o *scaledGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(in[0]).Clone(), nil
}
func (o *scaledGradOp) Do(in ...G.Value) (G.Value, error) {
	scale := float32(1)
	if v, ok := in[1].(*G.F32); ok {
		scale = float32(*v)
	}
	d := buffer(&o.out, dims(in[0])...)
	dd, g := f32(d), f32(*o.src)
	for i, v := range g {
		dd[i] = v * scale
	}
	return d, nil
}
