// Package op holds what every gorgonia op of shrink shares: identity and
// hashing, typed signatures, and output buffers reused across calls.
//
// shrink's ops (package nn's layers, package model's losses and quantizers)
// are fused float32 kernels. Each op owns its output buffer and returns it
// from every Do, so a training step allocates no tensors; a graph is built
// once per stage and its ops are never shared between graphs.
package op

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var ids atomic.Int64

// Base is the bookkeeping every op shares. The id keeps gorgonia from merging
// two ops it would otherwise think identical.
type Base struct {
	id   int64
	name string
}

// NewBase names a new op.
func NewBase(name string) Base { return Base{id: ids.Add(1), name: name} }

// Name is the op's name (for messages and sub-op names).
func (o *Base) Name() string { return o.name }

func (o *Base) ReturnsPtr() bool      { return false }
func (o *Base) CallsExtern() bool     { return false }
func (o *Base) OverwritesInput() int  { return -1 }
func (o *Base) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s#%d", o.name, o.id) }
func (o *Base) String() string        { return o.name }
func (o *Base) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

var tA = hm.TypeVariable('a')

// Of is the type of a tensor with that many dimensions.
func Of(dims int) G.TensorType { return G.TensorType{Dims: dims, Of: tA} }

// Fn is the type of an op from its inputs' and output's dimension counts:
// Fn(4, 1, 4) takes a 4-D and a 1-D tensor and returns a 4-D one.
func Fn(dims ...int) hm.Type {
	ts := make([]hm.Type, len(dims))
	for i, d := range dims {
		ts[i] = Of(d)
	}
	return hm.NewFnType(ts...)
}

// Buffer returns a float32 tensor of the shape, reusing *buf when it fits.
func Buffer(buf **tensor.Dense, shape ...int) *tensor.Dense {
	if *buf == nil || !(*buf).Info().Shape().Eq(tensor.Shape(shape)) {
		*buf = tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
	}
	return *buf
}

// F32 and Dims read a tensor's data and shape without allocating (Value.Data
// and Value.Shape box or copy on every call); Dims' result must not be changed.
func F32(v G.Value) []float32     { return v.(*tensor.Dense).Float32s() }
func Dims(v G.Value) tensor.Shape { return v.(*tensor.Dense).Info().Shape() }

// ShapeOf reads InferShape's argument.
func ShapeOf(d G.DimSizer) tensor.Shape { return d.(tensor.Shape) }

// All is a DiffWRT result: the op is differentiable in each of its n inputs.
func All(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}
