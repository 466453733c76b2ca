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

var (
	_ nn.Builder      = (*layerBuilder)(nil)
	_ nn.StatsFreezer = (*layerBuilder)(nil)
)

func (b *layerBuilder) Graph() *G.ExprGraph { return b.net.g }
func (b *layerBuilder) Batch() int          { return b.net.Batch }
func (b *layerBuilder) Training() bool      { return b.net.Mode == ModeTrain }
func (b *layerBuilder) Rows() *int          { return &b.net.rows }
func (b *layerBuilder) Rand() *rand.Rand    { return b.net.rng }
func (b *layerBuilder) Name() string        { return b.net.scope + b.layer.Label() }

func (b *layerBuilder) Weights() []*G.Node {
	if b.weights == nil {
		for _, w := range b.layer.Weights {
			node, err := b.net.weight(b.layer, w)
			if err != nil {
				panic(err) // a fake quantizer over a parameter node cannot fail
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
