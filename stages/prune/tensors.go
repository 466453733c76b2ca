package prune

import (
	"github.com/shrink-ml/shrink/model"
)

// tensor is one weight tensor a prune acts on. A factored (lowrank) layer has
// two, NAME.0.weight and NAME.1.weight, and each is pruned as a weight of its own,
// as PyTorch would prune the two Linear modules it stands for.
type tensor struct {
	layer  *model.Layer
	weight *model.Weight
}

// tensorsOf lists the weight tensors of layers, in order.
func tensorsOf(layers []*model.Layer) []tensor {
	var out []tensor
	for _, l := range layers {
		for _, w := range l.Weights {
			out = append(out, tensor{layer: l, weight: w})
		}
	}
	return out
}

// unpruned lists the flat indices the mask still keeps: the only candidates of a
// prune, so a second prune counts from what the first one left.
func (t tensor) unpruned() []int {
	w := t.weight
	idx := make([]int, 0, len(w.Data))
	for i := range w.Data {
		if w.Mask == nil || w.Mask[i] != 0 {
			idx = append(idx, i)
		}
	}
	return idx
}

// cut prunes flat indices: masked and zeroed for good. A quantized weight keeps
// its scales, so the survivors' integers do not move and the pruned ones store
// the zero point (the value 0).
func (t tensor) cut(idx []int) {
	w := t.weight
	if w.Mask == nil {
		w.Mask = make([]float32, len(w.Data))
		for i := range w.Mask {
			w.Mask[i] = 1
		}
	}
	for _, i := range idx {
		w.Mask[i] = 0
		w.Data[i] = 0
	}
	t.layer.Pruned = true
}

// kept counts the entries the mask keeps.
func kept(w *model.Weight) int {
	if w.Mask == nil {
		return len(w.Data)
	}
	n := 0
	for _, k := range w.Mask {
		if k != 0 {
			n++
		}
	}
	return n
}
