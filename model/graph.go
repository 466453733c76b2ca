package model

import (
	"fmt"
	"math/rand/v2"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/gemm"
	_ "github.com/shrink-ml/shrink/internal/openblas" // OpenBLAS under -tags openblas
	"github.com/shrink-ml/shrink/internal/sparse"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/quant"
)

func init() {
	// gorgonia's own ops (conv's im2col products) use the same GEMM as ours.
	G.Use(gemm.BLAS{})
}

// Mode says what a Net is built for.
type Mode int

const (
	// ModeEval computes logits with the model as stored: quantized weights as their
	// integers stand for, static activations with their calibrated ranges, dynamic
	// ones observed per batch.
	ModeEval Mode = iota
	// ModeTrain adds the loss and the parameter gradients; quantized layers
	// fake-quantize their weights each step and static activations track their
	// ranges by moving average (quantization-aware training).
	ModeTrain
	// ModeCalibrate is ModeEval in float, observing each quantized layer's input range.
	ModeCalibrate
)

// Net is a model compiled into a gorgonia graph for one batch size. Its parameter
// nodes share the model's slices, so optimizer steps update the model in place.
type Net struct {
	Model *Model
	Batch int
	Mode  Mode

	// X, Labels and Teacher are the input buffers: fill them, then Run.
	X, Labels, Teacher []float32

	g       *G.ExprGraph
	exec    *executor
	logits  *G.Node
	loss    *lossOp
	params  []*Param
	inputQ  map[string]*fakeQuantOp // layer -> its input's quantizer
	observe map[string]*observerOp  // layer -> calibration observer
	// scope prefixes the node names of a model that shares its graph with another
	// (mutual learning's peer), so gorgonia does not merge same-named inputs.
	scope string
	// peer and mutual are set for two models trained together (see mutual.go).
	peer   *Net
	mutual *mutualLossOp
	// rows is how many leading rows of the batch are real (a short batch is
	// padded); layers with statistics over the batch read it.
	rows int
	rng  *rand.Rand // dropout's draws (training)
	// frozen are the switches of batch norms whose statistics freeze
	// (Model.FreezeStats), by layer.
	frozen map[string]*bool
	// nf4 are the NF4 weights a training net dequantizes before every run.
	nf4 []nf4Fill
	// sparse are the layers that run on sparse kernels (Eval).
	sparse map[string]*sparse.Matrix
	// staticInt8: statically quantized layers run on integer kernels (Eval).
	staticInt8 bool
	// fuse: batch norms, residual adds and ReLUs run in their convolution's
	// output pass (Eval, fuse.go).
	fuse bool
	// chains are the fused chains by their last layer (fuse.go).
	chains map[int]*fusedChain
}

// Param is a trainable tensor: the model's slice, its mask and its gradient.
type Param struct {
	Name string
	Data []float32
	Mask []float32 // nil: every entry trains
	node *G.Node
	grad *G.Node
	exec *executor
}

// Grad is the gradient of the last Run.
func (p *Param) Grad() []float32 { return f32(p.exec.value(p.grad)) }

// NetOptions configure Build.
type NetOptions struct {
	Batch int
	Mode  Mode
	Loss  Loss       // Train only
	Rand  *rand.Rand // Train only: dropout's draws
	// Sparse (Eval only) runs the named linear layers on sparse kernels with
	// these weights (the infer package chooses them by density); the
	// matrices are read-only and may be shared by many nets. They win over
	// static int8 kernels; a dynamically quantized layer keeps its integer
	// kernels.
	Sparse map[string]*sparse.Matrix
	// StaticInt8 (Eval only) runs statically quantized linear and conv
	// layers (Layer.RunsStaticInt8), and dynamically quantized linear layers
	// whose inputs are not reduce_range (Layer.RunsFullInt8), on integer
	// kernels: exact integer sums, so their outputs differ from the float
	// evaluation of the same quantized values by that evaluation's rounding.
	StaticInt8 bool
	// Fuse (Eval only) computes each convolution's batch norm, and the ReLU
	// or residual add (and ReLU) after it, in the convolution's output pass
	// (nn.Fusion), with the separate layers' arithmetic: the same outputs,
	// without a pass over the activations per layer. The net reads the
	// model's weights once (the filters laid out by tap on the first run):
	// the model must not change while the net is used, as with infer.New.
	Fuse bool
}

// fusesReLU reports whether layer i, on integer kernels, applies the ReLU
// that follows it: a type that can (nn.ReLUFuser), no adapter, and the next
// layer a ReLU it alone feeds (reluAfter). The bits are those of the two
// layers apart.
func (n *Net) fusesReLU(i int) bool {
	l := n.Model.Layers[i]
	if f, ok := l.Config.(nn.ReLUFuser); !ok || !f.FusesReLU() || l.Adapter != nil {
		return false
	}
	return reluAfter(n.Model.Layers, i)
}

// reluAfter reports whether layer i+1 is a plain ReLU of layer i's output
// alone (no input quantization, no adapter) and no other layer reads layer
// i: a ReLU that layer i may apply in its own output pass.
func reluAfter(layers []*Layer, i int) bool {
	if i < 0 || i+1 >= len(layers) {
		return false
	}
	next := layers[i+1]
	if next.Type != "relu" || next.Adapter != nil || next.Input != nil || len(next.Inputs) != 1 || next.Inputs[0] != i {
		return false
	}
	for j, o := range layers {
		if j != i+1 && slices.Contains(o.Inputs, i) {
			return false
		}
	}
	return true
}

// Build compiles the model for a batch size.
func Build(m *Model, opt NetOptions) (*Net, error) {
	n := newNet(m, opt, G.NewGraph(), "")
	x, err := n.forward(make([]float32, prod(n.inputShape())))
	if err != nil {
		return nil, err
	}
	if opt.Mode != ModeTrain {
		n.exec, err = newExecutor(n.g, G.Nodes{n.logits})
		return n, err
	}
	classes := m.Spec.Classes
	labels := n.labelsNode()
	n.loss = &lossOp{opBase: newBase("loss"), loss: opt.Loss}
	lossIn := []*G.Node{n.logits, labels}
	inputs := G.Nodes{x, labels}
	if opt.Loss.Distill {
		n.Teacher = make([]float32, opt.Batch*classes)
		t := G.NewMatrix(n.g, tensor.Float32, G.WithShape(opt.Batch, classes), G.WithName("teacher"),
			G.WithValue(tensor.New(tensor.WithShape(opt.Batch, classes), tensor.WithBacking(n.Teacher))))
		lossIn = append(lossIn, t)
		inputs = append(inputs, t)
	}
	loss, err := G.ApplyOp(n.loss, lossIn...)
	if err != nil {
		return nil, err
	}
	if err := n.compileTrain(loss, inputs); err != nil {
		return nil, err
	}
	return n, nil
}

func newNet(m *Model, opt NetOptions, g *G.ExprGraph, scope string) *Net {
	n := &Net{Model: m, Batch: opt.Batch, Mode: opt.Mode, g: g, scope: scope, rows: opt.Batch, rng: opt.Rand,
		inputQ: map[string]*fakeQuantOp{}, observe: map[string]*observerOp{}}
	if opt.Mode == ModeEval {
		n.sparse, n.staticInt8, n.fuse = opt.Sparse, opt.StaticInt8, opt.Fuse
	}
	return n
}

func (n *Net) inputShape() []int { return append([]int{n.Batch}, n.Model.Spec.InputShape()...) }

// forward adds the input node over the buffer x (which becomes n.X) and the
// layers up to the logits, each layer reading its inputs' outputs.
func (n *Net) forward(x []float32) (*G.Node, error) {
	inShape := n.inputShape()
	n.X = x
	in := G.NewTensor(n.g, tensor.Float32, len(inShape), G.WithShape(inShape...), G.WithName(n.scope+"x"),
		G.WithValue(tensor.New(tensor.WithShape(inShape...), tensor.WithBacking(n.X))))
	outs := make([]*G.Node, len(n.Model.Layers))
	var absorbed map[int]bool
	if n.fuse {
		n.chains, absorbed = n.fusionPlan()
	}
	skip := -1 // a ReLU the layer before it applies (nn.Int8.ReLU)
	for i, l := range n.Model.Layers {
		if absorbed[i] {
			continue // built with its chain, at the chain's last layer
		}
		if ch := n.chains[i]; ch != nil {
			var err error
			if outs[i], err = n.buildChain(ch, outs, in); err != nil {
				return nil, err
			}
			continue
		}
		if i == skip {
			outs[i] = outs[i-1]
			continue
		}
		ins := make([]*G.Node, len(l.Inputs))
		for k, j := range l.Inputs {
			if j == arch.ModelInput {
				ins[k] = in
			} else {
				ins[k] = outs[j]
			}
		}
		b := &layerBuilder{net: n, layer: l}
		if n.Mode == ModeEval {
			b.int8 = l.int8Form(n.staticInt8)
			// Sparse kernels replace dense float and static int8 ones (on the
			// fake-quantized input); a dynamic layer keeps its integer kernels,
			// whose arithmetic defines its results.
			if w := n.sparse[l.Name]; w != nil && (b.int8 == nil || b.int8.Static != nil) {
				b.int8, b.sparse = nil, w
			}
			if b.int8 != nil && n.fusesReLU(i) {
				b.int8.ReLU, skip = true, i+1
			}
		}
		var err error
		if b.int8 == nil && !quantizesInputs(l) {
			if ins[0], err = n.input(ins[0], l); err != nil {
				return nil, fmt.Errorf("layer %s: %w", l.Label(), err)
			}
		}
		ops, ok := l.Config.(nn.Op)
		if !ok {
			return nil, fmt.Errorf("layer %s: type %s has no ops", l.Label(), l.Type)
		}
		if outs[i], err = ops.Build(b, ins); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Label(), err)
		}
		if l.Adapter != nil {
			if outs[i], err = n.adapter(l, ins[0], outs[i]); err != nil {
				return nil, fmt.Errorf("layer %s: adapter: %w", l.Label(), err)
			}
		}
	}
	n.logits = outs[len(outs)-1]
	return in, nil
}

// labelsNode adds the labels input over a fresh n.Labels buffer.
func (n *Net) labelsNode() *G.Node {
	n.Labels = make([]float32, n.Batch)
	return G.NewVector(n.g, tensor.Float32, G.WithShape(n.Batch), G.WithName("labels"),
		G.WithValue(tensor.New(tensor.WithShape(n.Batch), tensor.WithBacking(n.Labels))))
}

// compileTrain adds the gradients of loss with respect to every parameter and
// compiles a machine computing only the loss and those gradients (the input's
// gradient is never computed).
func (n *Net) compileTrain(loss *G.Node, inputs G.Nodes) error {
	wrt := make(G.Nodes, len(n.params))
	for i, p := range n.params {
		wrt[i] = p.node
		inputs = append(inputs, p.node)
	}
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		return fmt.Errorf("gradients: %w", err)
	}
	for i, p := range n.params {
		p.grad = grads[i]
	}
	outputs := append(G.Nodes{loss, n.logits}, grads...)
	exec, err := newExecutor(n.g, outputs)
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	n.exec = exec
	for _, p := range n.params {
		p.exec = exec
	}
	return nil
}

// param adds a model tensor to the graph as a parameter node over its slice.
func (n *Net) param(name string, shape []int, data, mask []float32) *G.Node {
	node := G.NewTensor(n.g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(n.scope+name),
		G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))))
	n.params = append(n.params, &Param{Name: name, Data: data, Mask: mask, node: node})
	return node
}

// constant adds a tensor training leaves alone (a frozen layer's) over its
// slice: not a parameter, so no gradient is computed for it.
func (n *Net) constant(name string, shape []int, data []float32) *G.Node {
	return G.NewTensor(n.g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(n.scope+name),
		G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))))
}

// weight adds a weight, fake-quantized while training a quantized layer.
func (n *Net) weight(l *Layer, w *Weight) (*G.Node, error) {
	node := n.param(w.Name, w.Shape, w.Data, w.Mask)
	if l.Quant == nil || n.Mode != ModeTrain {
		return node, nil
	}
	return G.ApplyOp(newFakeQuant(*l.Quant, ObserveEach, len(w.Shape)), node)
}

// input applies the layer's activation quantization to its input.
func (n *Net) input(h *G.Node, l *Layer) (*G.Node, error) {
	if l.Input == nil {
		return h, nil
	}
	dims := h.Shape().Dims()
	if n.Mode == ModeCalibrate {
		op := &observerOp{opBase: newBase("observe " + l.Name), dims: dims}
		n.observe[l.Name] = op
		return G.ApplyOp(op, h)
	}
	spec := l.Input.Spec
	spec.Granularity = quant.PerTensor
	var op *fakeQuantOp
	switch {
	case l.Input.Mode == "dynamic":
		op = newFakeQuant(spec, ObserveEach, dims)
	case n.Mode == ModeTrain:
		op = newFakeQuant(spec, MovingAverage, dims)
		if len(l.Input.Params.Scale) == 1 {
			// Start from the calibrated range rather than the first batch's.
			op.runMin, op.runMax, op.Seen = l.Input.RangeMin, l.Input.RangeMax, l.Input.RangeMax > l.Input.RangeMin
		}
	default:
		op = newFakeQuant(spec, Fixed, dims)
		op.Params = l.Input.Params
	}
	n.inputQ[l.Name] = op
	return G.ApplyOp(op, h)
}

// SetRows says how many leading rows of the next batch are real; the rest
// pad a short batch to the graph's size.
func (n *Net) SetRows(rows int) {
	n.rows = rows
	if n.peer != nil {
		n.peer.rows = rows
	}
}

// Run executes the graph once over the buffers.
func (n *Net) Run() error {
	if err := n.dequantize(); err != nil {
		return err
	}
	if n.peer != nil {
		if err := n.peer.dequantize(); err != nil {
			return err
		}
	}
	return n.exec.run()
}

// Logits are the last Run's outputs, [Batch, classes].
func (n *Net) Logits() []float32 { return f32(n.exec.value(n.logits)) }

// LastLoss is the last Run's loss (Train nets).
func (n *Net) LastLoss() LossValue {
	if n.mutual != nil {
		return n.mutual.last[0]
	}
	return n.loss.last
}

// Params are the trainable tensors in graph order (Train nets).
func (n *Net) Params() []*Param { return n.params }
