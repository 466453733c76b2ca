// Package model holds networks as PyTorch would name them (fc1.weight is [out, in],
// layer1.0.bn1.running_mean, ...) together with their compression state (masks,
// quantization, low-rank factors), builds them into gorgonia graphs from the
// layer types of package nn, and trains and evaluates them.
package model

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/quant"
	"github.com/shrink-ml/shrink/quant/nf4"
)

// Model is a network's tensors and compression state.
type Model struct {
	Spec  arch.Spec
	Graph *arch.Graph
	// Layers are every layer of the graph in forward order, those without
	// tensors (relu, flatten, ...) included.
	Layers []*Layer
	// FreezeStats lists batch norm layers whose statistics freeze during
	// training, with the number of epochs they first train with batch
	// statistics (0: frozen from the start): quantization-aware training's
	// torch.ao freeze_bn_stats. A training setting, not saved.
	FreezeStats map[string]int
}

// Layer is one layer of the network with its tensors.
type Layer struct {
	*arch.Node
	// Weights are the tensors compressions act on: NAME.weight, or for a
	// factored layer NAME.0.weight then NAME.1.weight (W ~= NAME.1.weight x
	// NAME.0.weight); an LSTM's weight_ih_l0, weight_hh_l0, ...
	Weights []*Weight
	// Params are its other learnable tensors (a bias, a norm's weight and bias).
	Params []*Weight
	// Buffers are state gradients do not train (running_mean, running_var).
	Buffers []*Weight
	// Counters are int64 buffers (num_batches_tracked).
	Counters []*Counter
	Rank     int // the factorization's rank; 0 when dense
	// Pruned marks layers whose weights carry masks: zeros that stay zero.
	Pruned bool
	// Quant is how the layer's weights are quantized; nil for float weights.
	Quant *quant.Spec
	// Input quantizes the layer's input activations; nil for float inputs.
	Input *ActQuant
	// Frozen says what training leaves alone (a LoRA stage's base, the layers a
	// train stage does not list); empty for a layer that trains.
	Frozen Freeze
	// Adapter is a LoRA adapter on the layer (adapter.go); nil for none.
	Adapter *Adapter
}

// Weight is one float tensor in PyTorch layout.
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
	// NF4 is the weight quantized to 4-bit NormalFloat (QLoRA's frozen base, as
	// bitsandbytes stores it); nil otherwise. Data then holds the values its
	// codes stand for. It is read-only: saving quantizes Data afresh if a later
	// stage changed it.
	NF4 *nf4.Weight
}

// Counter is an int64 scalar buffer.
type Counter struct {
	Name  string
	Value int64
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

// Suffix is a tensor's name after its layer's: "weight", "1.bias".
func (l *Layer) Suffix(name string) string { return strings.TrimPrefix(name, l.Name+".") }

// Bias is the layer's bias (NAME.bias, or NAME.1.bias when factored); nil
// when it has none.
func (l *Layer) Bias() *Weight {
	for _, p := range l.Params {
		if s := l.Suffix(p.Name); s == "bias" || s == "1.bias" {
			return p
		}
	}
	return nil
}

// BiasName is the state_dict name of the layer's bias.
func (l *Layer) BiasName() string {
	if l.Rank > 0 {
		return l.Name + ".1.bias"
	}
	return l.Name + ".bias"
}

// Compressible reports whether compressions apply to the layer: it has
// weights.
func (l *Layer) Compressible() bool { return len(l.Weights) > 0 }

// WeightShape is the shape of the layer's (dense) weight: [out, in] or
// [out, in/groups, kh, kw], whether or not it is factored.
func (l *Layer) WeightShape() []int {
	for _, t := range l.Tensors() {
		if t.Role == arch.Weight {
			return t.Shape
		}
	}
	return nil
}

// Units is the number of output units of the layer's weight (rows of a
// linear weight, channels of a conv).
func (l *Layer) Units() int { return l.WeightShape()[0] }

// FanIn is the number of inputs of one output unit of the dense weight.
func (l *Layer) FanIn() int { return arch.Shape(l.WeightShape()[1:]).Size() }

// New builds a model with PyTorch's default initialization, drawn from rng
// layer by layer in forward order and within a layer in state_dict order
// (for Linear and Conv2d: kaiming-uniform weights with a = sqrt(5), i.e.
// U(+-1/sqrt(fan_in)), and biases at the same bound). spec must be resolved
// (its input shape known).
func New(spec arch.Spec, rng *rand.Rand) (*Model, error) {
	m, err := empty(spec)
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		for _, t := range l.Tensors() {
			l.add(t, l.Name+"."+t.Suffix, t.Shape)
		}
	}
	m.Reinit(rng)
	return m, nil
}

// empty is the model's layers without tensors.
func empty(spec arch.Spec) (*Model, error) {
	spec = spec.Normalized()
	g, err := spec.Graph()
	if err != nil {
		return nil, err
	}
	m := &Model{Spec: spec, Graph: g}
	for _, n := range g.Nodes {
		m.Layers = append(m.Layers, &Layer{Node: n})
	}
	return m, nil
}

// add gives the layer a zeroed tensor of a role.
func (l *Layer) add(t arch.Tensor, name string, shape []int) {
	if t.Int64 {
		l.Counters = append(l.Counters, &Counter{Name: name})
		return
	}
	w := &Weight{Name: name, Shape: slices.Clone(shape), Data: make([]float32, arch.Shape(shape).Size())}
	switch t.Role {
	case arch.Weight:
		l.Weights = append(l.Weights, w)
	case arch.Param:
		l.Params = append(l.Params, w)
	default:
		l.Buffers = append(l.Buffers, w)
	}
}

// Reinit draws fresh values for every tensor as PyTorch's constructors do
// (see New). A factored layer's factors are drawn as PyTorch would draw a
// Linear(in, k) then a Linear(k, out). Masks are left for the caller to apply.
func (m *Model) Reinit(rng *rand.Rand) {
	for _, l := range m.Layers {
		init, ok := l.Config.(nn.Initializer)
		if !ok {
			continue
		}
		var ts []nn.InitTensor
		for _, w := range l.tensorsInOrder() {
			ts = append(ts, nn.InitTensor{Suffix: l.Suffix(w.Name), Shape: w.Shape, Data: w.Data})
		}
		for _, c := range l.Counters {
			c.Value = 0
		}
		init.Init(ts, rng)
	}
}

// tensorsInOrder lists the layer's float tensors in state_dict order: its
// tensors as the layer type lists them, each weight standing for its factors.
func (l *Layer) tensorsInOrder() []*Weight {
	var out []*Weight
	wi := 0
	for _, t := range l.Tensors() {
		switch {
		case t.Int64:
		case t.Role == arch.Weight && l.Rank > 0:
			out = append(out, l.Weights...)
			wi = len(l.Weights)
		case t.Role == arch.Weight:
			out = append(out, l.Weights[wi])
			wi++
		default:
			if w := l.tensor(l.tensorName(t.Suffix)); w != nil {
				out = append(out, w)
			}
		}
	}
	return out
}

// tensorName is the state_dict name of the layer's tensor with this suffix
// (as the layer type names it), after factoring: NAME.bias is NAME.1.bias.
func (l *Layer) tensorName(suffix string) string {
	if suffix == "bias" && l.Rank > 0 {
		return l.Name + ".1.bias"
	}
	return l.Name + "." + suffix
}

// tensor finds one of the layer's float tensors by name.
func (l *Layer) tensor(name string) *Weight {
	for _, set := range [][]*Weight{l.Weights, l.Params, l.Buffers} {
		for _, w := range set {
			if w.Name == name {
				return w
			}
		}
	}
	return nil
}

// Layer finds a layer by name.
func (m *Model) Layer(name string) *Layer {
	for _, l := range m.Layers {
		if l.Name != "" && l.Name == name {
			return l
		}
	}
	return nil
}

// WeightLayers are the layers compressions apply to, in forward order.
func (m *Model) WeightLayers() []*Layer {
	var out []*Layer
	for _, l := range m.Layers {
		if l.Compressible() {
			out = append(out, l)
		}
	}
	return out
}

// LayerNames lists the weight layers' names in forward order.
func (m *Model) LayerNames() []string {
	var names []string
	for _, l := range m.WeightLayers() {
		names = append(names, l.Name)
	}
	return names
}

// Select returns the weight layers the selectors name (names, globs, re:
// patterns; see arch.Resolve), or all when there are none.
func (m *Model) Select(selectors []string) ([]*Layer, error) {
	if len(selectors) == 0 {
		return m.WeightLayers(), nil
	}
	names, err := arch.Expand(selectors, m.LayerNames(), "layers with weights")
	if err != nil {
		return nil, err
	}
	out := make([]*Layer, len(names))
	for i, n := range names {
		out[i] = m.Layer(n)
	}
	return out, nil
}

// Output is the layer producing the logits.
func (m *Model) Output() *Layer { return m.Layers[len(m.Layers)-1] }

// Clone deep-copies the model.
func (m *Model) Clone() *Model {
	c := &Model{Spec: m.Spec.Normalized(), Graph: m.Graph, FreezeStats: maps.Clone(m.FreezeStats)}
	for _, l := range m.Layers {
		nl := *l
		nl.Weights = cloneWeights(l.Weights)
		nl.Params = cloneWeights(l.Params)
		nl.Buffers = cloneWeights(l.Buffers)
		nl.Counters = nil
		for _, k := range l.Counters {
			nk := *k
			nl.Counters = append(nl.Counters, &nk)
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
		if l.Adapter != nil {
			nl.Adapter = l.Adapter.clone()
		}
		c.Layers = append(c.Layers, &nl)
	}
	return c
}

func cloneWeights(ws []*Weight) []*Weight {
	out := make([]*Weight, 0, len(ws))
	for _, w := range ws {
		nw := *w
		nw.Shape = slices.Clone(w.Shape)
		nw.Data = slices.Clone(w.Data)
		nw.Mask = slices.Clone(w.Mask)
		if w.QParams != nil {
			p := quant.Params{Scale: slices.Clone(w.QParams.Scale), ZeroPoint: slices.Clone(w.QParams.ZeroPoint)}
			nw.QParams = &p
		}
		out = append(out, &nw)
	}
	return out
}

// SetSpec replaces the architecture (after a change of widths or layers) and
// re-expands the graph, which must keep the layers' order and names; the
// layers then point at the new graph's nodes.
func (m *Model) SetSpec(spec arch.Spec) error {
	spec = spec.Normalized()
	g, err := spec.Graph()
	if err != nil {
		return err
	}
	if len(g.Nodes) != len(m.Layers) {
		return fmt.Errorf("internal error: the new architecture has %d layers, the model %d", len(g.Nodes), len(m.Layers))
	}
	for i, n := range g.Nodes {
		if n.Name != m.Layers[i].Name || n.Type != m.Layers[i].Type {
			return fmt.Errorf("internal error: layer %d is %s (%s) in the new architecture, %s (%s) in the model", i, n.Label(), n.Type, m.Layers[i].Label(), m.Layers[i].Type)
		}
		m.Layers[i].Node = n
	}
	m.Spec, m.Graph = spec, g
	return m.checkShapes()
}

// checkShapes makes sure every tensor has the shape the architecture gives
// it, so the model saves and reloads.
func (m *Model) checkShapes() error {
	for _, l := range m.Layers {
		for _, t := range l.Tensors() {
			switch {
			case t.Int64:
			case t.Role == arch.Weight && l.Rank > 0:
			case t.Role == arch.Weight:
				if w := l.tensor(l.Name + "." + t.Suffix); w == nil || !slices.Equal(w.Shape, t.Shape) {
					return fmt.Errorf("internal error: %s.%s does not have the shape %v the architecture gives it", l.Name, t.Suffix, t.Shape)
				}
			default:
				if w := l.tensor(l.tensorName(t.Suffix)); w == nil || !slices.Equal(w.Shape, t.Shape) {
					return fmt.Errorf("internal error: %s does not have the shape %v the architecture gives it", l.tensorName(t.Suffix), t.Shape)
				}
			}
		}
	}
	return nil
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
	Total, NonZero             int // every learnable value (PyTorch's parameters()), biases included
	Weights, WeightsNonZero    int // weight tensors only
	LayerWeights, LayerNonZero map[string]int
}

// Count counts parameters and non-zeros (for quantized weights, the values the
// integers stand for). Buffers (batch norm's running statistics) are not
// parameters; LoRA adapters are (PyTorch's parameters() of a PEFT model), but
// not weights.
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
		for _, p := range l.Params {
			c.Total += len(p.Data)
			c.NonZero += countNonZero(p.Data)
		}
		if a := l.Adapter; a != nil {
			for _, w := range []*Weight{a.A, a.B} {
				c.Total += len(w.Data)
				c.NonZero += countNonZero(w.Data)
			}
		}
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

// MultiplyAdds is the number of multiply-adds of one forward pass for one
// sample: the dense layer's, or for a factored layer both factors' at the
// same output positions.
func (l *Layer) MultiplyAdds() int {
	dense := l.MACs()
	if l.Rank == 0 || len(l.Weights) == 0 {
		return int(dense)
	}
	size := arch.Shape(l.WeightShape()).Size()
	n := 0
	for _, w := range l.Weights {
		n += len(w.Data)
	}
	return int(dense / int64(size) * int64(n))
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
	return Product(l.Weights[1].Data, l.Weights[0].Data, l.Units(), l.Rank, l.FanIn())
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

func prod(shape []int) int { return arch.Shape(shape).Size() }

// MustNew is New for a spec known to be valid (tests, specs checked by the
// pipeline); it panics otherwise.
func MustNew(spec arch.Spec, rng *rand.Rand) *Model {
	m, err := New(spec, rng)
	if err != nil {
		panic(fmt.Sprintf("model.MustNew: %v", err))
	}
	return m
}

// SetFactors makes the layer factored: its weight becomes first
// (NAME.0.weight) then second (NAME.1.weight), of rank first.Shape[0], and its
// bias NAME.1.bias. Masks go with the dense weight.
func (l *Layer) SetFactors(first, second []float32) {
	f := l.Config.(arch.Factorable)
	one, _ := f.FactorShapes(l.In, 1)
	k := len(first) / arch.Shape(one).Size()
	fs, ss := f.FactorShapes(l.In, k)
	bias := l.Bias()
	l.Weights = []*Weight{
		{Name: l.Name + ".0.weight", Shape: fs, Data: first},
		{Name: l.Name + ".1.weight", Shape: ss, Data: second},
	}
	l.Rank = k
	if bias != nil {
		bias.Name = l.BiasName()
	}
}
