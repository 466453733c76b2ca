package model

import (
	"math/rand/v2"

	G "gorgonia.org/gorgonia"

	"github.com/shrink-ml/shrink/nn"
)

// layerBuilder hands one layer's tensors to its type's Build (nn.Builder):
// parameters become graph nodes over the model's slices (so optimizer steps
// update the model in place), fake-quantized while training a quantized layer.
type layerBuilder struct {
	net     *Net
	layer   *Layer
	weights []*G.Node
}

var _ nn.Builder = (*layerBuilder)(nil)

func (b *layerBuilder) Graph() *G.ExprGraph { return b.net.g }
func (b *layerBuilder) Batch() int          { return b.net.Batch }
func (b *layerBuilder) Rows() *int          { return &b.net.rows }
func (b *layerBuilder) Rand() *rand.Rand    { return b.net.rng }
func (b *layerBuilder) Name() string        { return b.net.scope + b.layer.Label() }

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

// isParam reports whether w is one of the layer's learnable non-weight tensors.
func (l *Layer) isParam(w *Weight) bool {
	for _, p := range l.Params {
		if p == w {
			return true
		}
	}
	return false
}
