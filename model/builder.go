package model

import (
	"math/rand/v2"

	G "gorgonia.org/gorgonia"

	"github.com/shrink-ml/shrink/internal/sparse"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/quant"
)

// layerBuilder hands one layer's tensors to its type's Build (nn.Builder):
// parameters become graph nodes over the model's slices (so optimizer steps
// update the model in place), fake-quantized while training a quantized layer.
type layerBuilder struct {
	net     *Net
	layer   *Layer
	weights []*G.Node
	int8    *nn.Int8       // set when the layer evaluates on integer kernels
	sparse  *sparse.Matrix // set when it evaluates on sparse ones
}

var (
	_ nn.Builder      = (*layerBuilder)(nil)
	_ nn.StatsFreezer = (*layerBuilder)(nil)
)

func (b *layerBuilder) Graph() *G.ExprGraph { return b.net.g }
func (b *layerBuilder) Batch() int          { return b.net.Batch }
func (b *layerBuilder) Rows() *int          { return &b.net.rows }
func (b *layerBuilder) Rand() *rand.Rand    { return b.net.rng }
func (b *layerBuilder) Name() string        { return b.net.scope + b.layer.Label() }
func (b *layerBuilder) Int8() *nn.Int8      { return b.int8 }

// Sparse is nn.SparseBuilder: the layer's weight as sparse kernels run it.
func (b *layerBuilder) Sparse() *sparse.Matrix { return b.sparse }

// ActQuant is the dynamic input quantizer of a layer type that quantizes its
// own inputs (an LSTM), while it computes in float.
func (b *layerBuilder) ActQuant() nn.ActQuantizer {
	l := b.layer
	if b.int8 != nil || l.Input == nil || l.Input.Mode != "dynamic" || !quantizesInputs(l) || b.net.Mode == ModeCalibrate {
		return nil
	}
	spec := l.Input.Spec
	spec.Granularity = quant.PerTensor
	return &dynamicQuantizer{spec: spec}
}

// Training is false for a layer frozen whole: it computes as in evaluation
// (a batch norm with its running statistics, left as they are).
func (b *layerBuilder) Training() bool {
	return b.net.Mode == ModeTrain && b.layer.Frozen != FrozenAll
}

// Weights are parameter nodes, or constants for a frozen layer (no gradient
// is computed for them, which also skips the weight-gradient products). A
// training net reads an NF4 weight from its codes, dequantized every step.
func (b *layerBuilder) Weights() []*G.Node {
	if b.weights == nil {
		for _, w := range b.layer.Weights {
			var node *G.Node
			switch {
			case w.NF4 != nil && b.net.Mode == ModeTrain:
				node = b.net.nf4Weight(w)
			case b.layer.Frozen != Trainable:
				node = b.net.constant(w.Name, w.Shape, w.Data)
			default:
				var err error
				if node, err = b.net.weight(b.layer, w); err != nil {
					panic(err) // a fake quantizer over a parameter node cannot fail
				}
			}
			b.weights = append(b.weights, node)
		}
	}
	return b.weights
}

func (b *layerBuilder) Param(suffix string) *G.Node {
	w := b.layer.tensor(b.layer.tensorName(suffix))
	if w == nil || !b.layer.isParam(w) {
		return nil
	}
	if b.layer.Frozen != Trainable {
		return b.net.constant(w.Name, w.Shape, w.Data)
	}
	return b.net.param(w.Name, w.Shape, w.Data, nil)
}

func (b *layerBuilder) Buffer(suffix string) []float32 {
	if w := b.layer.tensor(b.layer.tensorName(suffix)); w != nil {
		return w.Data
	}
	return nil
}

func (b *layerBuilder) Counter(suffix string) *int64 {
	for _, c := range b.layer.Counters {
		if c.Name == b.layer.Name+"."+suffix {
			return &c.Value
		}
	}
	return nil
}

// FrozenStats is the switch of a batch norm the model lists in FreezeStats,
// which training flips at the epoch the model says.
func (b *layerBuilder) FrozenStats() *bool {
	if _, ok := b.net.Model.FreezeStats[b.layer.Name]; !ok || b.layer.Name == "" {
		return nil
	}
	if b.net.frozen == nil {
		b.net.frozen = map[string]*bool{}
	}
	f := new(bool)
	b.net.frozen[b.layer.Name] = f
	return f
}

// freezeStats sets each listed batch norm's switch for an epoch (1-based).
func (n *Net) freezeStats(epoch int) {
	for name, f := range n.frozen {
		*f = epoch > n.Model.FreezeStats[name]
	}
}

// isParam reports whether w is one of the layer's learnable non-weight tensors.
func (l *Layer) isParam(w *Weight) bool {
	for _, p := range l.Params {
		if p == w {
			return true
		}
	}
	return false
}

// quantizesInputs reports whether the layer's type quantizes its inputs inside
// its ops (nn.InputQuantizer), so the network puts no fake quantizer before it.
func quantizesInputs(l *Layer) bool {
	q, ok := l.Config.(nn.InputQuantizer)
	return ok && q.QuantizesInputs()
}

// dynamicQuantizer is nn.ActQuantizer for a per-tensor spec: each call
// observes its tensor's range and rounds it to that grid, reusing its scratch.
type dynamicQuantizer struct {
	spec       quant.Spec
	mins, maxs [1]float32
	params     quant.Params
}

func (d *dynamicQuantizer) FakeQuantize(x, out, inside []float32) {
	quant.MinMaxInto(x, d.mins[:], d.maxs[:])
	d.spec.ObserveInto(&d.params, d.mins[:], d.maxs[:])
	d.spec.FakeQuantizeMask(x, d.params, out, inside)
}

// RunsInt8 reports whether the layer evaluates on integer kernels (see
// int8Form): a dynamically quantized layer of a type that has them.
func (l *Layer) RunsInt8() bool {
	r, ok := l.Config.(nn.Int8Runner)
	return ok && r.RunsInt8() && l.Rank == 0 && l.Quant != nil && l.Quant.Scheme == quant.Symmetric && l.Quant.Bits <= 8 &&
		l.Input != nil && l.Input.Mode == "dynamic" && l.Input.Spec.ReduceRange
}

// RunsStaticInt8 reports whether the layer can evaluate on integer kernels
// with its calibrated input parameters (NetOptions.StaticInt8): a layer
// type with such kernels (nn.StaticInt8Runner), not factored, symmetric
// weights of at most 8 bits, inputs quantized statically per tensor to 8
// bits.
func (l *Layer) RunsStaticInt8() bool {
	r, ok := l.Config.(nn.StaticInt8Runner)
	return ok && r.RunsStaticInt8() && l.Rank == 0 && l.Quant != nil && l.Quant.Scheme == quant.Symmetric && l.Quant.Bits <= 8 &&
		l.Input != nil && l.Input.Mode == "static" && l.Input.Spec.Bits == 8 && len(l.Input.Params.Scale) == 1 && len(l.Input.Params.ZeroPoint) == 1
}

// RunsFullInt8 reports whether a dynamically quantized layer whose inputs
// are not reduce_range (quantize-int8's default: 8-bit codes over all 256
// values) can evaluate on integer kernels (NetOptions.StaticInt8): a type
// with both dynamic and static integer kernels (a linear layer), not
// factored, symmetric weights of at most 8 bits. Unlike reduce_range
// layers, whose integer arithmetic defines their results (PyTorch's
// quantized::linear_dynamic), these are defined by the float evaluation of
// their quantized values, which the exact integer sums differ from by that
// evaluation's rounding, as a static layer's do.
func (l *Layer) RunsFullInt8() bool {
	r, ok := l.Config.(nn.Int8Runner)
	s, ok2 := l.Config.(nn.StaticInt8Runner)
	return ok && ok2 && r.RunsInt8() && s.RunsStaticInt8() && l.Rank == 0 && l.Quant != nil && l.Quant.Scheme == quant.Symmetric && l.Quant.Bits <= 8 &&
		l.Input != nil && l.Input.Mode == "dynamic" && !l.Input.Spec.ReduceRange && l.Input.Spec.Bits <= 8
}

// int8Form is the layer as integer kernels run it, when it evaluates on them:
// a layer type with integer kernels (nn.Int8Runner), not factored, with
// symmetric weights of at most 8 bits and inputs quantized dynamically as
// PyTorch's dynamic operators do (reduce_range); with static set, also a
// layer whose inputs are quantized statically (RunsStaticInt8) or
// dynamically over the full range (RunsFullInt8). Other
// quantized layers evaluate in float on the values their integers stand for.
func (l *Layer) int8Form(static bool) *nn.Int8 {
	var q *nn.Int8
	switch {
	case l.RunsInt8():
		q = &nn.Int8{Act: l.Input.Spec}
	case static && l.RunsFullInt8():
		q = &nn.Int8{Act: l.Input.Spec}
	case static && l.RunsStaticInt8():
		qmin, qmax := l.Input.Spec.Range()
		q = &nn.Int8{Act: l.Input.Spec, Static: &nn.Int8Static{Scale: l.Input.Params.Scale[0], ZeroPoint: l.Input.Params.ZeroPoint[0], QMin: qmin, QMax: qmax}}
	default:
		return nil
	}
	q.Act.Granularity = quant.PerTensor
	for _, w := range l.Weights {
		p := w.QParams
		if p == nil {
			pp := l.Quant.ParamsFor(w.Data, w.Shape)
			p = &pp
		}
		codes := make([]int32, len(w.Data))
		l.Quant.Quantize(w.Data, *p, codes)
		iw := nn.Int8Weight{Rows: w.Shape[0], Cols: len(w.Data) / w.Shape[0], Shape: w.Shape, Q: make([]int8, len(codes)), Scale: p.Scale}
		for i, c := range codes {
			iw.Q[i] = int8(c)
		}
		q.Weights = append(q.Weights, iw)
	}
	return q
}

var _ nn.ReLUFusingBuilder = (*layerBuilder)(nil)

// fuseReLU turns FuseReLU on; tests turn it off to compare.
var fuseReLU = true

// FuseReLU lets a training batch norm apply the ReLU layer that follows it
// when that ReLU alone reads its output and nothing sits between them (no
// adapter, no input quantization, as in QAT): the same bits as the two
// layers' ops, with two passes over the activations fewer each way.
// Other modes keep one op per layer (calibration observes, inference folds).
func (b *layerBuilder) FuseReLU() bool {
	if !fuseReLU {
		return false
	}
	n, l := b.net, b.layer
	layers := n.Model.Layers
	i := l.Index
	if n.Mode != ModeTrain || l.Adapter != nil || i < 0 || i >= len(layers) || layers[i] != l {
		return false
	}
	return reluAfter(layers, i)
}
