package model

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/quant"
	"github.com/shrink-ml/shrink/quant/nf4"
)

// Format is the checkpoint format this package writes and reads.
const Format = "shrink/v1"

// LayerCompression is what the "compression" metadata says of one layer.
type LayerCompression struct {
	Rank     int         `json:"rank,omitempty"`
	Pruned   bool        `json:"pruned,omitempty"`
	Sparsity float64     `json:"sparsity,omitempty"` // of the layer's weights, for readers
	Quant    *quant.Spec `json:"quant,omitempty"`
	Input    *ActQuant   `json:"input_quant,omitempty"`
	// NF4 says the weights are stored as bitsandbytes stores NF4 weights.
	NF4 *NF4Spec `json:"nf4,omitempty"`
	// Frozen and Adapter are a LoRA stage's: the base is frozen, the layer
	// carries NAME.lora_A.weight and NAME.lora_B.weight.
	Frozen  Freeze       `json:"frozen,omitempty"`
	Adapter *AdapterSpec `json:"adapter,omitempty"`
}

// Validate checks what a file says of a layer before anything uses it: a
// changed byte must give an error, not a panic deep in evaluation.
func (c LayerCompression) Validate() error {
	if c.Rank < 0 {
		return fmt.Errorf("rank %d is negative", c.Rank)
	}
	if !(c.Sparsity >= 0 && c.Sparsity <= 1) {
		return fmt.Errorf("sparsity %v: must be 0 to 1", c.Sparsity)
	}
	if c.Quant != nil {
		if err := c.Quant.Validate(); err != nil {
			return fmt.Errorf("quant: %w", err)
		}
	}
	if in := c.Input; in != nil {
		if in.Mode != "dynamic" && in.Mode != "static" {
			return fmt.Errorf("input_quant: mode %q: must be dynamic or static", in.Mode)
		}
		if err := in.Spec.Validate(); err != nil {
			return fmt.Errorf("input_quant: %w", err)
		}
		if !(in.RangeMin <= in.RangeMax) || math.IsInf(float64(in.RangeMin), 0) || math.IsInf(float64(in.RangeMax), 0) {
			return fmt.Errorf("input_quant: range [%v, %v] is not a finite range", in.RangeMin, in.RangeMax)
		}
	}
	switch c.Frozen {
	case Trainable, FrozenParams, FrozenAll:
	default:
		return fmt.Errorf("frozen %q: must be params or all (or absent)", c.Frozen)
	}
	if a := c.Adapter; a != nil {
		if a.R < 1 {
			return fmt.Errorf("adapter: r %d: must be at least 1", a.R)
		}
		if !(a.Alpha > 0) || math.IsInf(a.Alpha, 0) {
			return fmt.Errorf("adapter: alpha %v: must be a finite number above 0", a.Alpha)
		}
		if !(a.Dropout >= 0 && a.Dropout < 1) {
			return fmt.Errorf("adapter: dropout %v: must be from 0 to below 1", a.Dropout)
		}
	}
	if c.NF4 != nil && c.NF4.Blocksize < 1 {
		return fmt.Errorf("nf4: blocksize %d: must be at least 1", c.NF4.Blocksize)
	}
	return nil
}

// NF4Spec describes a layer's NF4 weights for readers; the tensors carry
// everything (their quant-state JSON).
type NF4Spec struct {
	Blocksize   int  `json:"blocksize"`
	DoubleQuant bool `json:"double_quant,omitempty"`
}

// Compression describes every layer's compression, for checkpoint metadata:
// every layer with weights, and the other layers a LoRA stage froze.
func (m *Model) Compression() map[string]LayerCompression {
	out := map[string]LayerCompression{}
	counts := m.Count()
	for _, l := range m.Layers {
		if !l.Compressible() && l.Frozen == Trainable {
			continue
		}
		c := LayerCompression{Rank: l.Rank, Pruned: l.Pruned, Quant: l.Quant, Input: l.Input, Frozen: l.Frozen}
		if n := counts.LayerWeights[l.Name]; n > 0 && l.Pruned {
			c.Sparsity = 1 - float64(counts.LayerNonZero[l.Name])/float64(n)
		}
		if l.Quant == nil && len(l.Weights) > 0 && l.Weights[0].NF4 != nil {
			q := l.Weights[0].NF4
			c.NF4 = &NF4Spec{Blocksize: q.Blocksize, DoubleQuant: q.Nested != nil}
		}
		if l.Adapter != nil {
			c.Adapter = l.Adapter.Spec()
		}
		out[l.Name] = c
	}
	return out
}

// prefix is the module name a weight's companions (scale, zero point) hang from:
// "fc1" for fc1.weight, "fc1.0" for fc1.0.weight.
func prefix(weightName string) string { return strings.TrimSuffix(weightName, ".weight") }

// ToFile converts the model to a checkpoint: PyTorch state_dict names and layouts,
// quantized weights as compressed-tensors stores them, and metadata that rebuilds
// the model. extra metadata (stage, recipe digest) is merged in.
func (m *Model) ToFile(extra map[string]string) (*checkpoint.File, error) {
	f := &checkpoint.File{Metadata: map[string]string{"format": Format, "arch": m.Spec.JSON()}}
	comp, err := json.Marshal(m.Compression())
	if err != nil {
		return nil, err
	}
	f.Metadata["compression"] = string(comp)
	for k, v := range extra {
		f.Metadata[k] = v
	}
	for _, l := range m.Layers {
		for _, w := range l.Weights {
			switch {
			case l.Quant != nil:
				f.Tensors = append(f.Tensors, quantizedTensors(w, *l.Quant)...)
			case w.NF4 != nil:
				ts, err := nf4Tensors(w)
				if err != nil {
					return nil, err
				}
				f.Tensors = append(f.Tensors, ts...)
			default:
				f.Tensors = append(f.Tensors, checkpoint.F32(w.Name, w.Shape, w.Data))
			}
		}
		if a := l.Adapter; a != nil {
			f.Tensors = append(f.Tensors, checkpoint.F32(a.A.Name, a.A.Shape, a.A.Data), checkpoint.F32(a.B.Name, a.B.Shape, a.B.Data))
		}
		if l.Input != nil && l.Input.Mode == "static" {
			if len(l.Input.Params.Scale) != 1 {
				return nil, fmt.Errorf("layer %s: its input is statically quantized but was never calibrated (no input scale)", l.Name)
			}
			p := prefix(l.Weights[0].Name)
			f.Tensors = append(f.Tensors, checkpoint.F32(p+".input_scale", []int{1}, l.Input.Params.Scale))
			if l.Input.Spec.Scheme == quant.Asymmetric {
				f.Tensors = append(f.Tensors, checkpoint.I8(p+".input_zero_point", []int{1}, toInt8(l.Input.Params.ZeroPoint)))
			}
		}
		for _, w := range slices.Concat(l.Params, l.Buffers) {
			f.Tensors = append(f.Tensors, checkpoint.F32(w.Name, w.Shape, w.Data))
		}
		for _, c := range l.Counters {
			f.Tensors = append(f.Tensors, checkpoint.I64(c.Name, []int{}, []int64{c.Value}))
		}
	}
	sort.Slice(f.Tensors, func(i, j int) bool { return f.Tensors[i].Name < f.Tensors[j].Name })
	return f, nil
}

// quantizedTensors stores a weight W as integers with its scale (and zero point
// when asymmetric), compressed-tensors' names appended to the weight's: I8 W for
// 5 to 8 bits or pack-quantized I32 W_packed with W_shape for 4 bits and below,
// W_scale, W_zero_point (fc1.weight_scale; lstm.weight_ih_l0_scale).
func quantizedTensors(w *Weight, spec quant.Spec) []checkpoint.Tensor {
	params := w.QParams
	if params == nil {
		p := spec.ParamsFor(w.Data, w.Shape)
		params = &p
	}
	q := make([]int32, len(w.Data))
	spec.Quantize(w.Data, *params, q)
	p := w.Name // companions append to the weight's name: fc1.weight_scale, lstm.weight_ih_l0_scale
	ch := len(params.Scale)
	scaleShape := []int{1}
	if spec.Granularity == quant.PerChannel {
		scaleShape = []int{ch, 1}
	}
	var out []checkpoint.Tensor
	if spec.Bits <= 4 {
		rows := w.Shape[0]
		cols := len(w.Data) / rows
		shape := make([]int32, len(w.Shape))
		for i, d := range w.Shape {
			shape[i] = int32(d)
		}
		out = append(out,
			checkpoint.I32(p+"_packed", []int{rows, quant.PackedWidth(cols, spec.Bits)}, quant.Pack(q, rows, cols, spec.Bits)),
			checkpoint.I32(p+"_shape", []int{len(shape)}, shape))
	} else {
		out = append(out, checkpoint.I8(p, w.Shape, toInt8(q)))
	}
	out = append(out, checkpoint.F32(p+"_scale", scaleShape, params.Scale))
	if spec.Scheme == quant.Asymmetric {
		out = append(out, checkpoint.I8(p+"_zero_point", scaleShape, toInt8(params.ZeroPoint)))
	}
	return out
}

func toInt8(v []int32) []int8 {
	out := make([]int8, len(v))
	for i, x := range v {
		out[i] = int8(x)
	}
	return out
}

// FromFile rebuilds a model from a checkpoint. A checkpoint without shrink's
// metadata (a PyTorch state_dict saved with safetensors) is read with spec, the
// recipe's architecture; otherwise the checkpoint's own arch wins. Missing,
// unexpected and wrongly shaped tensors are reported together.
func FromFile(f *checkpoint.File, spec *arch.Spec) (*Model, error) {
	var comp map[string]LayerCompression
	if js, ok := f.Metadata["arch"]; ok {
		s, err := arch.Parse(js)
		if err != nil {
			return nil, err
		}
		spec = &s
		if c := f.Metadata["compression"]; c != "" {
			if err := json.Unmarshal([]byte(c), &comp); err != nil {
				return nil, fmt.Errorf("compression metadata: %w", err)
			}
			for _, name := range slices.Sorted(maps.Keys(comp)) {
				if err := comp[name].Validate(); err != nil {
					return nil, fmt.Errorf("compression metadata, layer %s: %w", name, err)
				}
			}
		}
	}
	if spec == nil {
		return nil, fmt.Errorf("the checkpoint has no arch metadata: say which architecture it holds (the recipe's model section)")
	}
	m, err := empty(*spec)
	if err != nil {
		return nil, err
	}
	if err := compressionFits(comp, m); err != nil {
		return nil, err
	}
	ld := &loader{f: f, used: map[string]bool{}}
	for _, l := range m.Layers {
		c := comp[l.Name] // never an entry for "": compressionFits refused it
		l.Pruned, l.Rank, l.Quant, l.Input, l.Frozen = c.Pruned, c.Rank, c.Quant, c.Input, c.Frozen
		ld.layer(l)
		if c.Adapter != nil {
			ld.adapter(l, c.Adapter)
		}
	}
	for _, n := range f.Names() {
		if !ld.used[n] {
			ld.unexpected = append(ld.unexpected, n)
		}
	}
	if err := ld.err(); err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if l.Pruned {
			for _, w := range l.Weights {
				w.Mask = make([]float32, len(w.Data))
				for i, x := range w.Data {
					if x != 0 {
						w.Mask[i] = 1
					}
				}
			}
		}
	}
	return m, nil
}

// compressionFits refuses compression metadata that names a layer the
// architecture lacks (unnamed layers included: several share the name ""), or
// gives a layer what its type cannot carry: a layer without weights is only
// ever frozen, and only factorable types have a rank.
func compressionFits(comp map[string]LayerCompression, m *Model) error {
	for _, name := range slices.Sorted(maps.Keys(comp)) {
		c, l := comp[name], m.Layer(name)
		if l == nil {
			return fmt.Errorf("compression metadata names layer %q, which the architecture does not have: the file's metadata was edited or written for another model; save it again from the stage that made it", name)
		}
		compressed := c.Quant != nil || c.Input != nil || c.Pruned || c.Sparsity != 0 || c.NF4 != nil || c.Adapter != nil || c.Rank != 0
		if compressed && l.WeightShape() == nil {
			return fmt.Errorf("compression metadata, layer %s: a %s layer has no weights to prune, quantize, factor or adapt", name, l.Type)
		}
		if _, ok := l.Config.(arch.Factorable); c.Rank != 0 && !ok {
			return fmt.Errorf("compression metadata, layer %s: rank %d, but a %s layer cannot be factored", name, c.Rank, l.Type)
		}
	}
	return nil
}

// loader reads one layer's tensors, collecting every problem.
type loader struct {
	f                            *checkpoint.File
	used                         map[string]bool
	missing, unexpected, badType []string
}

func (ld *loader) get(name string) *checkpoint.Tensor {
	t, ok := ld.f.Get(name)
	if !ok {
		return nil
	}
	ld.used[name] = true
	return t
}

func (ld *loader) err() error {
	if len(ld.missing)+len(ld.unexpected)+len(ld.badType) == 0 {
		return nil
	}
	var parts []string
	if len(ld.missing) > 0 {
		parts = append(parts, "missing: "+strings.Join(ld.missing, ", "))
	}
	if len(ld.unexpected) > 0 {
		parts = append(parts, "unexpected: "+strings.Join(ld.unexpected, ", "))
	}
	if len(ld.badType) > 0 {
		parts = append(parts, "wrong shape or dtype: "+strings.Join(ld.badType, "; "))
	}
	return fmt.Errorf("the checkpoint does not match the model: %s", strings.Join(parts, "; "))
}

// layer reads every tensor the layer type lists: weights (float, int8 or
// packed; factored when the file holds NAME.0.weight), the others as F32, and
// int64 counters.
func (ld *loader) layer(l *Layer) {
	factored := l.Rank > 0 || ld.has(l.Name+".0.weight") || ld.has(l.Name+".0.weight_packed")
	if factored {
		if _, ok := l.Config.(arch.Factorable); !ok {
			factored = false
		}
	}
	for _, t := range l.Tensors() {
		switch {
		case t.Int64:
			if v := ld.int64s(l.Name+"."+t.Suffix, t.Shape); v != nil {
				l.Counters = append(l.Counters, &Counter{Name: l.Name + "." + t.Suffix, Value: v[0]})
			}
		case t.Role == arch.Weight && factored:
			ld.factored(l)
		case t.Role == arch.Weight:
			name := l.Name + "." + t.Suffix
			if w := ld.weight(l, name, t.Shape); w != nil {
				l.Weights = append(l.Weights, w)
			}
		default:
			name := l.tensorName(t.Suffix)
			if v := ld.floats(name, t.Shape); v != nil {
				l.add(t, name, t.Shape)
				w := l.tensor(name)
				w.Data = v
			}
		}
	}
	if l.Compressible() && !factored {
		ld.inputQuant(l, l.Name)
	}
}

// int64s reads an I64 tensor of the given shape (a scalar: shape []).
func (ld *loader) int64s(name string, shape []int) []int64 {
	t := ld.get(name)
	if t == nil {
		ld.missing = append(ld.missing, name)
		return nil
	}
	v, err := t.Int64s()
	if err != nil || !slices.Equal(t.Shape, shape) {
		ld.badType = append(ld.badType, fmt.Sprintf("%s is %s %v, want I64 %v", name, t.DType, t.Shape, shape))
		return nil
	}
	return v
}

// factored reads NAME.0.weight and NAME.1.weight in the shapes the layer type
// gives its factors, and the rank from the first.
func (ld *loader) factored(l *Layer) {
	name := l.Name
	k := ld.rankOf(name)
	if k <= 0 {
		ld.missing = append(ld.missing, name+".0.weight")
		return
	}
	l.Rank = k
	first, second := l.Config.(arch.Factorable).FactorShapes(l.In, k)
	a := ld.weight(l, name+".0.weight", first)
	b := ld.weight(l, name+".1.weight", second)
	if a != nil && b != nil {
		l.Weights = []*Weight{a, b}
	}
	ld.inputQuant(l, name+".0")
}

// rankOf reads the rank from the first factor's leading dimension.
func (ld *loader) rankOf(name string) int {
	if t, ok := ld.f.Get(name + ".0.weight"); ok && len(t.Shape) > 0 {
		return t.Shape[0]
	}
	if t, ok := ld.f.Get(name + ".0.weight_shape"); ok {
		if s, err := t.Int32s(); err == nil && len(s) > 0 {
			return int(s[0])
		}
	}
	return 0
}

// weight reads a float, NF4, int8 or packed weight with its quantization parameters.
func (ld *loader) weight(l *Layer, name string, shape []int) *Weight {
	w := &Weight{Name: name, Shape: shape}
	if nf4.Is(ld.f, name) {
		return ld.nf4Weight(w)
	}
	if t, ok := ld.f.Get(name); ok && t.DType == checkpoint.DTypeF32 {
		w.Data = ld.floats(name, shape)
		if w.Data == nil {
			return nil
		}
		return w
	}
	return ld.quantizedWeight(l, w)
}

func (ld *loader) has(name string) bool {
	_, ok := ld.f.Get(name)
	return ok
}

// floats reads an F32 tensor of the given shape.
func (ld *loader) floats(name string, shape []int) []float32 {
	t := ld.get(name)
	if t == nil {
		ld.missing = append(ld.missing, name)
		return nil
	}
	v, err := t.Float32s()
	if err != nil || !slices.Equal(t.Shape, shape) {
		ld.badType = append(ld.badType, fmt.Sprintf("%s is %s %v, want F32 %v", name, t.DType, t.Shape, shape))
		return nil
	}
	return v
}

func sameShape(dims []int32, shape []int) bool {
	if len(dims) != len(shape) {
		return false
	}
	for i := range dims {
		if int(dims[i]) != shape[i] {
			return false
		}
	}
	return true
}

// Save writes the model to path atomically and returns the file's sha256.
func (m *Model) Save(path string, extra map[string]string) (string, error) {
	f, err := m.ToFile(extra)
	if err != nil {
		return "", err
	}
	return checkpoint.WriteFile(path, f)
}

// Load reads a model from a checkpoint file (see FromFile).
func Load(path string, spec *arch.Spec) (*Model, error) {
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := FromFile(f, spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
