package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/internal/op"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "embedding",
		Summary: "nn.Embedding: integer token ids [T] to vectors [T, dim], row id of weight [num, dim]",
		New:     func() arch.Layer { return &Embedding{} },
		// Another layer's output is float features, never ids, and no gradient
		// could flow back through the lookup to train that layer.
		ModelInput:     true,
		ModelInputWhat: "integer token ids",
	})
}

// Embedding is nn.Embedding (no padding_idx, max_norm or sparse gradients).
// Its input is a sequence of token ids, which the batch holds as float32
// values that are whole numbers (exact up to 2^24, far beyond any
// vocabulary). Its weight is a Weight, so pruning applies; no other
// compression does.
type Embedding struct {
	Num int `json:"num" minimum:"1" doc:"vocabulary size: ids run from 0 to num-1"`
	Dim int `json:"dim" minimum:"1" doc:"the size of each id's vector"`
}

// Validate requires num and dim.
func (e *Embedding) Validate() error {
	var errs config.Errors
	if e.Num == 0 {
		errs = append(errs, config.Errorf("num", "missing: the vocabulary size (ids run from 0 to num-1)"))
	}
	if e.Dim == 0 {
		errs = append(errs, config.Errorf("dim", "missing: the size of each id's vector"))
	}
	if e.Num > 1<<24 {
		errs = append(errs, config.Errorf("num", "%d ids do not fit float32 inputs exactly (at most 2^24 = 16777216)", e.Num))
	}
	return errs.Err()
}

func (e *Embedding) Shape(in []arch.Shape) (arch.Shape, error) {
	x := in[0]
	if len(x) != 1 {
		return nil, fmt.Errorf("takes a sequence of token ids [T] per sample, not %v (an embedding reads the model's input: integer ids, as npy int arrays [N, T] give them)", x)
	}
	return arch.Shape{x[0], e.Dim}, nil
}

func (e *Embedding) Tensors([]arch.Shape) []arch.Tensor {
	return []arch.Tensor{{Suffix: "weight", Shape: []int{e.Num, e.Dim}, Role: arch.Weight}}
}

// MACs: a lookup multiplies nothing.
func (e *Embedding) MACs([]arch.Shape, arch.Shape) int64 { return 0 }

// Init is nn.Embedding's reset_parameters: N(0, 1), drawn as
// rng.NormFloat64 rounded to float32.
func (e *Embedding) Init(ts []InitTensor, rng *rand.Rand) {
	for _, t := range ts {
		for i := range t.Data {
			t.Data[i] = float32(rng.NormFloat64())
		}
	}
}

func (e *Embedding) Build(b Builder, in []*G.Node) (*G.Node, error) {
	x := in[0]
	if x.Op() != nil { // arch.Graph refuses it; a hand-made graph might not
		return nil, fmt.Errorf("embedding %s reads the model's input (token ids); it cannot follow another layer", b.Name())
	}
	if x.Dims() != 2 {
		return nil, fmt.Errorf("embedding %s: takes ids [batch, T], not %v", b.Name(), x.Shape())
	}
	o := &embeddingOp{Base: op.NewBase(b.Name()), st: &embeddingState{}}
	return G.ApplyOp(o, x, b.Weights()[0])
}

// embeddingState is the last forward's ids, for the gradient.
type embeddingState struct{ ids []int32 }

// embeddingOp gathers rows of the weight [num, dim] by the ids of x
// [batch, T]: y [batch, T, dim].
type embeddingOp struct {
	op.Base
	st  *embeddingState
	out *tensor.Dense
}

func (o *embeddingOp) Arity() int   { return 2 }
func (o *embeddingOp) Type() hmType { return op.Fn(2, 2, 3) }
func (o *embeddingOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, w := op.ShapeOf(in[0]), op.ShapeOf(in[1])
	return tensor.Shape{x[0], x[1], w[1]}, nil
}

func (o *embeddingOp) Do(in ...G.Value) (G.Value, error) {
	xs, ws := op.Dims(in[0]), op.Dims(in[1])
	T, num, dim := xs[1], ws[0], ws[1]
	x, w := op.F32(in[0]), op.F32(in[1])
	y := op.Buffer(&o.out, xs[0], T, dim)
	yd := op.F32(y)
	if len(o.st.ids) != len(x) {
		o.st.ids = make([]int32, len(x))
	}
	for i, v := range x {
		id := int32(v)
		if float32(id) != v || id < 0 || int(id) >= num {
			return nil, o.badID(v, i, T, num)
		}
		o.st.ids[i] = id
		copy(yd[i*dim:(i+1)*dim], w[int(id)*dim:(int(id)+1)*dim])
	}
	return y, nil
}

// badID explains an input value that is not a token id of the vocabulary.
// The executor prefixes the op's name, the layer's.
func (o *embeddingOp) badID(v float32, i, T, num int) error {
	where := fmt.Sprintf("sample %d of the batch, position %d", i/T, i%T)
	if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) || math.Trunc(f) != f {
		return fmt.Errorf("embedding: input %g at %s is not a whole number: an embedding reads integer token ids (store them as an int npy array, without normalize)", v, where)
	}
	return fmt.Errorf("embedding: token id %.0f at %s is outside 0..%d: raise num (the vocabulary size, now %d) or fix the data", v, where, num-1, num)
}

// The ids get no gradient (they are integers); the weight's is dy
// scatter-added into the rows the ids chose.
func (o *embeddingOp) DiffWRT(int) []bool { return []bool{false, true} }
func (o *embeddingOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dw, err := G.ApplyOp(&embeddingGradOp{Base: op.NewBase(o.Name() + ".grad"), st: o.st}, grad, inputs[1])
	return G.Nodes{nil, dw}, err
}

// embeddingGradOp is the weight's gradient from dy [batch, T, dim] (and the
// weight, for its shape): each position's dy row is added to its id's row,
// positions in order, as PyTorch's index_add_ on CPU sums them.
type embeddingGradOp struct {
	op.Base
	st  *embeddingState
	out *tensor.Dense
}

func (o *embeddingGradOp) Arity() int   { return 2 }
func (o *embeddingGradOp) Type() hmType { return op.Fn(3, 2, 2) }
func (o *embeddingGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[1]).Clone(), nil
}
func (o *embeddingGradOp) Do(in ...G.Value) (G.Value, error) {
	ws := op.Dims(in[1])
	dim := ws[1]
	dw := op.Buffer(&o.out, ws...)
	dy, d := op.F32(in[0]), op.F32(dw)
	clear(d)
	for i, id := range o.st.ids {
		row := d[int(id)*dim : (int(id)+1)*dim]
		for j, g := range dy[i*dim : (i+1)*dim] {
			row[j] += g
		}
	}
	return dw, nil
}
