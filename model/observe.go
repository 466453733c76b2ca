package model

import (
	"slices"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// observerOp passes its input through unchanged while recording its range for
// static quantization's calibration: the global min and max (torch.ao's
// MinMaxObserver), and optionally every value, for a percentile observer.
type observerOp struct {
	opBase
	dims     int
	min, max float32
	seen     bool
	keep     bool      // record the values for percentiles
	values   []float32 // recorded values
	// rows is how many leading rows of a batch hold data (0: all); the padding
	// rows of a short last batch are not observed.
	rows int
	out  *tensor.Dense
}

func (o *observerOp) Arity() int    { return 1 }
func (o *observerOp) Type() hm.Type { return hm.NewFnType(tensorOf(o.dims), tensorOf(o.dims)) }
func (o *observerOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(in[0]).Clone(), nil
}

func (o *observerOp) Do(in ...G.Value) (G.Value, error) {
	x := f32(in[0])
	y := buffer(&o.out, dims(in[0])...)
	copy(f32(y), x)
	if batch := dims(in[0])[0]; o.rows > 0 && o.rows < batch {
		x = x[:o.rows*(len(x)/batch)]
	}
	lo, hi := x[0], x[0]
	for _, v := range x {
		lo = min(lo, v)
		hi = max(hi, v)
	}
	if !o.seen {
		o.min, o.max, o.seen = lo, hi, true
	} else {
		o.min, o.max = min(o.min, lo), max(o.max, hi)
	}
	if o.keep {
		o.values = append(o.values, x...)
	}
	return y, nil
}

// percentileRange returns the p-th and (100-p)-th percentiles of the recorded
// values: a range that ignores the rarest outliers.
func (o *observerOp) percentileRange(p float64) (lo, hi float32) {
	if len(o.values) == 0 {
		return o.min, o.max
	}
	v := slices.Clone(o.values)
	slices.Sort(v)
	at := func(q float64) float32 {
		i := int(q / 100 * float64(len(v)-1))
		return v[min(max(i, 0), len(v)-1)]
	}
	return at(100 - p), at(p)
}
