package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/quant"
	"github.com/shrink-ml/shrink/quant/nf4"
)

// Freeze says what training leaves alone in a layer.
type Freeze string

const (
	// Trainable is a layer whose tensors train.
	Trainable Freeze = ""
	// FrozenParams makes the layer's weights and other learnable tensors
	// constants: no gradient is computed for them and no optimizer steps them.
	// The layer still runs as in training: a batch norm normalizes with the
	// batch's statistics and updates its running ones (a PEFT model's frozen
	// base under model.train()).
	FrozenParams Freeze = "params"
	// FrozenAll also keeps the running statistics: the layer computes as in
	// evaluation.
	FrozenAll Freeze = "all"
)

// Adapter is a LoRA adapter with PEFT's semantics: the layer computes
// base(x) + B(A(dropout(x))) * Scaling(). For a linear layer A is [r, in] and
// B [out, r]; for a conv2d layer A is a convolution with the layer's kernel,
// stride and padding to r channels [r, in, kh, kw], and B a 1x1 convolution
// [out, r, 1, 1]. The tensors are NAME.lora_A.weight and NAME.lora_B.weight.
type Adapter struct {
	A, B *Weight
	// Alpha and RSLoRA give the scaling: Alpha/r, or Alpha/sqrt(r) for
	// rank-stabilized LoRA.
	Alpha  float64
	RSLoRA bool
	// Dropout is the probability of zeroing an input of the adapter branch
	// while training (the base path sees the input unchanged).
	Dropout float64
}

// AdapterSpec is what the checkpoint metadata says of an adapter.
type AdapterSpec struct {
	R       int     `json:"r"`
	Alpha   float64 `json:"alpha"`
	RSLoRA  bool    `json:"rslora,omitempty"`
	Dropout float64 `json:"dropout,omitempty"`
}

// Rank is the adapter's r: A's first dimension.
func (a *Adapter) Rank() int { return a.A.Shape[0] }

// Scaling is PEFT's scaling: alpha / r, or alpha / sqrt(r) with rsLoRA.
func (a *Adapter) Scaling() float64 {
	if a.RSLoRA {
		return a.Alpha / math.Sqrt(float64(a.Rank()))
	}
	return a.Alpha / float64(a.Rank())
}

// Spec is the adapter's metadata.
func (a *Adapter) Spec() *AdapterSpec {
	return &AdapterSpec{R: a.Rank(), Alpha: a.Alpha, RSLoRA: a.RSLoRA, Dropout: a.Dropout}
}

func (a *Adapter) clone() *Adapter {
	c := *a
	ws := cloneWeights([]*Weight{a.A, a.B})
	c.A, c.B = ws[0], ws[1]
	return &c
}

// AdapterNames are the tensor names of a layer's adapter.
func AdapterNames(layer string) (a, b string) {
	return layer + ".lora_A.weight", layer + ".lora_B.weight"
}

// adapterShapes are A's and B's shapes at rank r: PEFT builds A and B as
// shrink factors a layer (a Linear(in, r) then a Linear(r, out); a conv with
// the layer's kernel to r channels then a 1x1 conv).
func (l *Layer) adapterShapes(r int) (a, b []int, err error) {
	if !l.Caps().Adapter {
		return nil, nil, fmt.Errorf("layer %s is a %s: LoRA adapts linear and ungrouped conv2d layers", l.Label(), l.Type)
	}
	if c, ok := l.Config.(*nn.Conv2d); ok && c.Dilation != nn.Square(1) {
		// PEFT's lora_A is Conv2d(in, r, kernel, stride, padding): without the
		// dilation its output would not have the base's shape.
		return nil, nil, fmt.Errorf("layer %s is a dilated convolution (dilation %v): PEFT's conv adapters ignore dilation, so they cannot adapt it", l.Label(), c.Dilation)
	}
	f, ok := l.Config.(arch.Factorable)
	if !ok {
		return nil, nil, fmt.Errorf("layer %s (%s) has no factor shapes for an adapter", l.Label(), l.Type)
	}
	a, b = f.FactorShapes(l.In, r)
	return a, b, nil
}

// MaxAdapterValues bounds the values of one adapter (A and B together): 2^31,
// 8 GiB of float32 before the optimizer's moments. PEFT takes any rank, but
// LoRA's ranks are small (4 to 64): only a typo reaches this, and it should be
// an error, not an allocation that fails or overflows.
const MaxAdapterValues = 1 << 31

// CheckAdapterSize refuses a rank-r adapter whose A and B (shapes a and b)
// would hold more than MaxAdapterValues values, counting in float64 so that
// no rank overflows the count.
func CheckAdapterSize(layer string, r int, a, b []int) error {
	n := 0.0
	for _, s := range [][]int{a, b} {
		p := 1.0
		for _, d := range s {
			p *= float64(d)
		}
		n += p
	}
	if n <= MaxAdapterValues {
		return nil
	}
	full := min(b[0], arch.Shape(a[1:]).Size()) // out, and in (x kh x kw)
	return fmt.Errorf("layer %s: an adapter of rank %d would hold %.3g values (A %v, B %v), more than %d: lower r; LoRA's ranks are small, and above %d (the layer's min(out, in)) a rank adds nothing, since B A cannot have a higher rank",
		layer, r, n, a, b, MaxAdapterValues, full)
}

// AddAdapter gives the layer a LoRA adapter of rank r as PEFT initializes it:
// A kaiming-uniform with a = sqrt(5) (U(±1/sqrt(fan_in)), nn.Linear's and
// nn.Conv2d's default) drawn from rng, B zero, so the layer computes what it
// did until B trains. A factored layer cannot take one.
func (l *Layer) AddAdapter(r int, alpha float64, rslora bool, dropout float64, rng *rand.Rand) error {
	if l.Adapter != nil {
		return fmt.Errorf("layer %s already has a LoRA adapter: merge it first (merge: true)", l.Label())
	}
	if l.Rank > 0 {
		return fmt.Errorf("layer %s is factored (rank %d): LoRA adapts a dense weight", l.Label(), l.Rank)
	}
	if r < 1 {
		return fmt.Errorf("layer %s: adapter rank %d: must be at least 1", l.Label(), r)
	}
	as, bs, err := l.adapterShapes(r)
	if err != nil {
		return err
	}
	if err := CheckAdapterSize(l.Label(), r, as, bs); err != nil {
		return err
	}
	an, bn := AdapterNames(l.Name)
	a := &Adapter{
		A:     &Weight{Name: an, Shape: as, Data: make([]float32, arch.Shape(as).Size())},
		B:     &Weight{Name: bn, Shape: bs, Data: make([]float32, arch.Shape(bs).Size())},
		Alpha: alpha, RSLoRA: rslora, Dropout: dropout,
	}
	nn.Uniform(a.A.Data, float32(1/math.Sqrt(float64(fanIn(as)))), rng)
	l.Adapter = a
	return nil
}

func fanIn(shape []int) int { return arch.Shape(shape[1:]).Size() }

// Delta is the adapter's change to the weight, B A * scaling, in the weight's
// layout, as PEFT's get_delta_weight computes it in float32: the product
// rounded to float32 (each entry summed in float64 in order, so correctly
// rounded), then times the scaling rounded to float32.
func (a *Adapter) Delta() []float32 {
	r := a.Rank()
	out, cols := a.B.Shape[0], fanIn(a.A.Shape)
	p := Product(a.B.Data, a.A.Data, out, r, cols)
	s := float32(a.Scaling())
	d := make([]float32, len(p))
	for i, x := range p {
		d[i] = float32(x) * s
	}
	return d
}

// MergeAdapter folds the adapter into the weight, W + B A * scaling in
// float32, and drops it. The layer becomes a plain float layer: an NF4 or
// integer base is replaced by its dequantized values plus the delta, and the
// weight is dense (masks go: the delta has no zeros to keep).
func (l *Layer) MergeAdapter() {
	a := l.Adapter
	if a == nil {
		return
	}
	w := l.Weights[0]
	for i, d := range a.Delta() {
		w.Data[i] += d
	}
	w.NF4, w.QParams, w.Mask = nil, nil, nil
	l.Quant, l.Pruned, l.Adapter = nil, false, nil
}

// MergeAdapters merges every adapter, turns every NF4 weight into the float
// values it stands for and unfreezes every layer: the plain model later
// stages (prune, quantize, export) continue from. Integer weights of layers
// without an adapter stay quantized.
func (m *Model) MergeAdapters() {
	for _, l := range m.Layers {
		l.MergeAdapter()
		l.Frozen = Trainable
		for _, w := range l.Weights {
			w.NF4 = nil // Data holds its values
		}
	}
}

// HasAdapters reports whether any layer carries a LoRA adapter.
func (m *Model) HasAdapters() bool {
	return slices.ContainsFunc(m.Layers, func(l *Layer) bool { return l.Adapter != nil })
}

// QuantizeNF4 replaces the layer's weights by their NF4 quantization
// (bitsandbytes' quantize_4bit, optionally with double quantization); Data
// takes the values the codes stand for. The layer must be frozen: NF4 weights
// do not train.
func (l *Layer) QuantizeNF4(blocksize int, doubleQuant bool) error {
	if l.Frozen == Trainable {
		return fmt.Errorf("layer %s: only a frozen layer can hold NF4 weights", l.Label())
	}
	if l.Quant != nil {
		return fmt.Errorf("layer %s is already quantized (%s): NF4 quantizes float weights", l.Label(), l.Quant)
	}
	for _, w := range l.Weights {
		q, err := nf4.Quantize(w.Data, w.Shape, blocksize, doubleQuant)
		if err != nil {
			return fmt.Errorf("%s: %w", w.Name, err)
		}
		if err := q.Dequantize(w.Data); err != nil {
			return fmt.Errorf("%s: %w", w.Name, err)
		}
		w.NF4, w.QParams = q, nil
	}
	return nil
}

// QuantizeFrozen quantizes a frozen layer's weights to integers with spec
// (the int8 and int4 bases of QLoRA-style training): Data takes the values
// the integers stand for, which training leaves alone.
func (l *Layer) QuantizeFrozen(spec quant.Spec) error {
	if l.Frozen == Trainable {
		return fmt.Errorf("layer %s: only a frozen layer is quantized as a base", l.Label())
	}
	if l.Quant != nil {
		return fmt.Errorf("layer %s is already quantized (%s)", l.Label(), l.Quant)
	}
	l.Quant = &spec
	l.Requantize()
	return nil
}

// Trainable counts the values training updates: the tensors of layers that
// are not frozen (weights and other learnable tensors) and every adapter.
func (m *Model) Trainable() int {
	n := 0
	for _, l := range m.Layers {
		if l.Frozen == Trainable {
			for _, w := range slices.Concat(l.Weights, l.Params) {
				n += len(w.Data)
			}
		}
		if a := l.Adapter; a != nil {
			n += len(a.A.Data) + len(a.B.Data)
		}
	}
	return n
}
