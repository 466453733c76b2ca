package model

import (
	"fmt"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
)

// FitsData checks that a model with this architecture can take the data: one
// sample holds as many values as the model's input (an image [1, 28, 28] also
// feeds a network that takes [784]: the same values, row-major), and every
// label has an output. Evaluating a model on data it does not fit would print
// a plausible wrong number, or index past the logits.
func FitsData(spec arch.Spec, ds *data.Dataset) error {
	in := spec.InputShape()
	if got := ds.Train.Features; got != in.Size() {
		return fmt.Errorf("the %s data has %d values per sample (shape %v) but the model takes %d (input %v, %s): use data that fits the model, or a model section that fits the data",
			ds.Kind, got, arch.Shape(ds.Train.SampleShape()), in.Size(), in, spec.InputsKey())
	}
	for _, sp := range []*data.Split{ds.Train, ds.Val, ds.Test} {
		if sp == nil {
			continue
		}
		for _, y := range sp.Y {
			if int(y) >= spec.Classes || y < 0 {
				return fmt.Errorf("one %s label is %d but the model has %d outputs (model.classes): labels must be in [0, %d)", ds.Kind, y, spec.Classes, spec.Classes)
			}
		}
	}
	return nil
}
