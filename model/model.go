// Package model holds networks as PyTorch would name them (fc1.weight is [out, in])
// together with their compression state (masks, quantization, low-rank factors),
// builds them into gorgonia graphs, and trains and evaluates them.
package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/quant"
)

// Model is a network's parameters and compression state.
type Model struct {
	Spec   arch.Spec
	Layers []*Layer
}

// Layer is one weight layer: a Linear or a Conv2d, possibly factored into two.
type Layer struct {
	arch.Layer
	// Weights holds NAME.weight, or for a factored layer NAME.0.weight then
	// NAME.1.weight (W ~= NAME.1.weight x NAME.0.weight).
	Weights []*Weight
	Bias    []float32 // NAME.bias, or NAME.1.bias when factored
	Rank    int       // the factorization's rank; 0 when dense
	// Pruned marks layers whose weights carry masks: zeros that stay zero.
	Pruned bool
	// Quant is how the layer's weights are quantized; nil for float weights.
	Quant *quant.Spec
	// Input quantizes the layer's input activations; nil for float inputs.
	Input *ActQuant
}

// Weight is one weight tensor in PyTorch layout.
type Weight struct {
	Name  string
	Shape []int
	// Data holds the float values. For a quantized weight these are the values the
	// integers stand for, (q - zero_point) * scale, so evaluation is faithful.
	Data []float32
	// Mask is 1 where a weight is kept and 0 where pruned; nil when nothing is.
	Mask []float32
	// QParams are the scales and zero points the stored integers use; nil for float
	// weights. Training re-observes them each step; saving quantizes afresh.
	QParams *quant.Params
}

// ActQuant is the quantization of a layer's input activations.
type ActQuant struct {
	// Mode is "dynamic" (each batch is observed as it comes) or "static" (Params
	// were calibrated).
	Mode string     `json:"mode"`
	Spec quant.Spec `json:"spec"`
	// RangeMin and RangeMax are the observed range behind Params (static mode), kept
	// so later training resumes its moving average from it.
	RangeMin float32      `json:"min,omitempty"`
	RangeMax float32      `json:"max,omitempty"`
	Params   quant.Params `json:"-"`
}

// BiasName is the state_dict name of the layer's bias.
func (l *Layer) BiasName() string {
	if l.Rank > 0 {
		return l.Name + ".1.bias"
	}
	return l.Name + ".bias"
}

// New builds a model with PyTorch's default initialization (nn.Linear and
// nn.Conv2d: weights kaiming-uniform with a = sqrt(5), i.e. U(+-1/sqrt(fan_in)),
// biases U(+-1/sqrt(fan_in))), drawn from rng layer by layer, weight then bias.
func New(spec arch.Spec, rng *rand.Rand) *Model {
	spec = spec.Normalized()
	m := &Model{Spec: spec}
	for _, l := range spec.Layers() {
		shape := l.WeightShape()
		w := &Weight{Name: l.Name + ".weight", Shape: shape, Data: make([]float32, prod(shape))}
		m.Layers = append(m.Layers, &Layer{Layer: l, Weights: []*Weight{w}, Bias: make([]float32, l.Out)})
	}
	m.Reinit(rng)
	return m
}

// Reinit draws fresh weights as PyTorch initializes Linear and Conv2d:
// U(±1/sqrt(fan_in)) for every weight tensor, and for the bias at the fan-in
// of the tensor holding it (the last factor of a factored layer, a
// Linear(k, out) in PyTorch). Masks are left for the caller to apply.
func (m *Model) Reinit(rng *rand.Rand) {
	for _, l := range m.Layers {
		var bound float32
		for _, w := range l.Weights {
			bound = float32(1 / math.Sqrt(float64(len(w.Data)/w.Shape[0])))
			uniform(w.Data, bound, rng)
		}
		uniform(l.Bias, bound, rng)
	}
}

func uniform(v []float32, bound float32, rng *rand.Rand) {
	for i := range v {
		v[i] = bound * float32(2*rng.Float64()-1)
	}
}

func prod(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Layer finds a layer by name.
func (m *Model) Layer(name string) *Layer {
	for _, l := range m.Layers {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// LayerNames lists the layers in forward order.
func (m *Model) LayerNames() []string {
	names := make([]string, len(m.Layers))
	for i, l := range m.Layers {
		names[i] = l.Name
	}
	return names
}

// Select returns the named layers, or all when names is empty; an unknown name is
// an error that lists the model's layers.
func (m *Model) Select(names []string) ([]*Layer, error) {
	if len(names) == 0 {
		return slices.Clone(m.Layers), nil
	}
	var out []*Layer
	for _, n := range names {
		l := m.Layer(n)
		if l == nil {
			return nil, fmt.Errorf("layer %q is not in the model (its layers: %v)", n, m.LayerNames())
		}
		out = append(out, l)
	}
	return out, nil
}

// Clone deep-copies the model.
func (m *Model) Clone() *Model {
	c := &Model{Spec: m.Spec}
	c.Spec.Hidden = slices.Clone(m.Spec.Hidden)
	c.Spec.Channels = slices.Clone(m.Spec.Channels)
	for _, l := range m.Layers {
		nl := *l
		nl.Bias = slices.Clone(l.Bias)
		nl.Weights = nil
		for _, w := range l.Weights {
			nw := *w
			nw.Shape = slices.Clone(w.Shape)
			nw.Data = slices.Clone(w.Data)
			nw.Mask = slices.Clone(w.Mask)
			if w.QParams != nil {
				p := quant.Params{Scale: slices.Clone(w.QParams.Scale), ZeroPoint: slices.Clone(w.QParams.ZeroPoint)}
				nw.QParams = &p
			}
			nl.Weights = append(nl.Weights, &nw)
		}
		if l.Quant != nil {
			q := *l.Quant
			nl.Quant = &q
		}
		if l.Input != nil {
			a := *l.Input
			a.Params = quant.Params{Scale: slices.Clone(l.Input.Params.Scale), ZeroPoint: slices.Clone(l.Input.Params.ZeroPoint)}
			nl.Input = &a
		}
		c.Layers = append(c.Layers, &nl)
	}
	return c
}

// ApplyMasks zeroes every pruned weight, so Data and Mask agree.
func (m *Model) ApplyMasks() {
	for _, l := range m.Layers {
		for _, w := range l.Weights {
			if w.Mask != nil {
				for i, k := range w.Mask {
					w.Data[i] *= k
				}
			}
		}
	}
}

// Counts are a model's parameter counts.
type Counts struct {
	Total, NonZero             int // every parameter, biases included
	Weights, WeightsNonZero    int // weight tensors only
	LayerWeights, LayerNonZero map[string]int
}

// Count counts parameters and non-zeros (for quantized weights, the values the
// integers stand for).
func (m *Model) Count() Counts {
	c := Counts{LayerWeights: map[string]int{}, LayerNonZero: map[string]int{}}
	for _, l := range m.Layers {
		for _, w := range l.Weights {
			nz := countNonZero(w.Data)
			c.Weights += len(w.Data)
			c.WeightsNonZero += nz
			c.LayerWeights[l.Name] += len(w.Data)
			c.LayerNonZero[l.Name] += nz
		}
		c.Total += len(l.Bias)
		c.NonZero += countNonZero(l.Bias)
	}
	c.Total += c.Weights
	c.NonZero += c.WeightsNonZero
	return c
}

func countNonZero(v []float32) int {
	n := 0
	for _, x := range v {
		if x != 0 {
			n++
		}
	}
	return n
}

// MultiplyAdds is the number of multiply-adds of one forward pass for one sample.
func (l *Layer) MultiplyAdds() int {
	positions := 1
	if l.Kind == arch.Conv {
		positions = l.OutSide * l.OutSide
	}
	n := 0
	for _, w := range l.Weights {
		n += len(w.Data) * positions
	}
	return n
}

// DenseWeight is the layer's weight as a row-major [out, fan_in] float64
// matrix: the weight itself, or for a factored layer the product
// NAME.1.weight x NAME.0.weight.
func (l *Layer) DenseWeight() []float64 {
	if l.Rank == 0 {
		out := make([]float64, len(l.Weights[0].Data))
		for i, x := range l.Weights[0].Data {
			out[i] = float64(x)
		}
		return out
	}
	return Product(l.Weights[1].Data, l.Weights[0].Data, l.Out, l.Rank, l.FanIn())
}

// Product is second (rows x k) times first (k x cols) in float64, each entry
// summed over k in order.
func Product(second, first []float32, rows, k, cols int) []float64 {
	out := make([]float64, rows*cols)
	for r := 0; r < rows; r++ {
		row := out[r*cols : (r+1)*cols]
		for i := 0; i < k; i++ {
			a := float64(second[r*k+i])
			for c, b := range first[i*cols : (i+1)*cols] {
				row[c] += a * float64(b)
			}
		}
	}
	return out
}
