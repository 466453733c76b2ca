package export

import (
	"fmt"
	"maps"
	"slices"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/model"
)

// Dense returns m as plain F32 safetensors (int64 counters stay I64, as in
// PyTorch's state_dict): every weight holds the values its integers (or NF4
// codes) stand for ((q - zero_point) * scale, bit for bit), LoRA adapters are
// merged into their weights (W + B A * scaling), factored layers
// stay factored (NAME.0.weight, NAME.1.weight: that is the model, and fewer
// parameters), pruned zeros stay exact zeros. Weight quantization leaves the
// metadata, since the weights are floats now. Activation quantization has no
// place in a float model and is dropped: dropped names the layers that had it,
// whose outputs then differ slightly from the quantized model's.
// meta (the source's stage, recipe digest, key) is carried over.
func Dense(m *model.Model, meta map[string]string) (f *checkpoint.File, dropped []string, err error) {
	d := m.Clone()
	d.MergeAdapters() // a plain PyTorch model has no adapters, frozen layers or NF4 codes
	for _, l := range d.Layers {
		l.Quant = nil
		for _, w := range l.Weights {
			w.QParams = nil
		}
		if l.Input != nil {
			dropped = append(dropped, l.Name)
			l.Input = nil
		}
	}
	extra := maps.Clone(meta)
	for _, k := range []string{"format", "arch", "compression"} {
		delete(extra, k) // ToFile writes them afresh for the float model
	}
	f, err = d.ToFile(extra)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range f.Tensors {
		// Floats, and PyTorch's int64 counters (batch norm's num_batches_tracked).
		if t.DType != checkpoint.DTypeF32 && t.DType != checkpoint.DTypeI64 {
			return nil, nil, fmt.Errorf("dense export: tensor %s is %s, not F32 (please report this)", t.Name, t.DType)
		}
	}
	slices.Sort(dropped)
	return f, dropped, nil
}
