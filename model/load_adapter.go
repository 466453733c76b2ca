package model

import (
	"fmt"
	"slices"
	"strings"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/quant/nf4"
)

// Saving and reading a LoRA stage's state: NF4 weights under the names
// bitsandbytes and transformers give a Linear4bit's (docs/NF4.md), adapters
// as NAME.lora_A.weight and NAME.lora_B.weight (PEFT's module names without
// its base_model.model. prefix and adapter name).

// nf4Tensors are the checkpoint tensors of an NF4 weight. When a later stage
// changed Data (pruned it, say), the codes no longer stand for it and Data is
// quantized afresh, as integer weights are.
func nf4Tensors(w *Weight) ([]checkpoint.Tensor, error) {
	q := w.NF4
	cur := make([]float32, len(w.Data))
	if err := q.Dequantize(cur); err != nil {
		return nil, fmt.Errorf("%s: %w", w.Name, err)
	}
	if !slices.Equal(cur, w.Data) {
		var err error
		if q, err = nf4.Quantize(w.Data, w.Shape, q.Blocksize, q.Nested != nil); err != nil {
			return nil, fmt.Errorf("%s: %w", w.Name, err)
		}
	}
	ts, err := q.Tensors(w.Name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", w.Name, err)
	}
	return ts, nil
}

// nf4Weight reads an NF4 weight (nf4.FromTensors checks every tensor), its
// Data the values the codes stand for.
func (ld *loader) nf4Weight(w *Weight) *Weight {
	q, err := nf4.FromTensors(ld.f, w.Name)
	ld.markNF4(w.Name)
	if err != nil {
		ld.badType = append(ld.badType, err.Error())
		return nil
	}
	if !slices.Equal(q.Shape, w.Shape) {
		ld.badType = append(ld.badType, fmt.Sprintf("%s is an NF4 weight of shape %v, want %v", w.Name, q.Shape, w.Shape))
		return nil
	}
	w.Data = make([]float32, q.Len())
	if err := q.Dequantize(w.Data); err != nil {
		ld.badType = append(ld.badType, err.Error())
		return nil
	}
	w.NF4 = q
	return w
}

// markNF4 marks an NF4 weight's tensors read: NAME and every NAME.* tensor
// (FromTensors refuses any it does not know).
func (ld *loader) markNF4(name string) {
	for _, n := range ld.f.Names() {
		if n == name || strings.HasPrefix(n, name+".") {
			ld.used[n] = true
		}
	}
}

// adapter reads a layer's LoRA tensors in the shapes its metadata's rank gives.
func (ld *loader) adapter(l *Layer, spec *AdapterSpec) {
	as, bs, err := l.adapterShapes(spec.R)
	if err != nil {
		ld.badType = append(ld.badType, "adapter: "+err.Error())
		return
	}
	an, bn := AdapterNames(l.Name)
	a, b := ld.floats(an, as), ld.floats(bn, bs)
	if a == nil || b == nil {
		return
	}
	l.Adapter = &Adapter{
		A: &Weight{Name: an, Shape: as, Data: a}, B: &Weight{Name: bn, Shape: bs, Data: b},
		Alpha: spec.Alpha, RSLoRA: spec.RSLoRA, Dropout: spec.Dropout,
	}
}
