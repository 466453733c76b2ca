package model

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/gemm"
)

// conv2dOp is a valid (unpadded, stride 1) 2-D convolution of x [B, C, H, W] with
// w [O, C, K, K], PyTorch's Conv2d without bias, as one matrix product over the
// whole batch: the K×K patches of every output position form the rows of
// cols [B·P, C·K·K] (P = OH·OW), and out = cols · wᵀ. One large product keeps the
// GEMM fast and its result independent of how many threads run it; gorgonia's
// own Conv2d allocates tens of megabytes per call.
type conv2dOp struct {
	opBase
	cols *tensor.Dense // the patches of the last forward, for the gradients
	tmp  *tensor.Dense // [B·P, O] before the transpose to [B, O, P]
	out  *tensor.Dense
}

func newConv(name string) *conv2dOp { return &conv2dOp{opBase: newBase(name)} }

func (o *conv2dOp) Arity() int    { return 2 }
func (o *conv2dOp) Type() hm.Type { return hm.NewFnType(tensorOf(4), tensorOf(4), tensorOf(4)) }
func (o *conv2dOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, w := shapeOf(in[0]), shapeOf(in[1])
	if x[1] != w[1] || w[2] != w[3] || x[2] < w[2] || x[3] < w[3] {
		return nil, fmt.Errorf("conv: input %v does not fit filters %v", x, w)
	}
	return tensor.Shape{x[0], w[0], x[2] - w[2] + 1, x[3] - w[3] + 1}, nil
}

// geometry of a convolution from its input and filter shapes.
type convDims struct{ B, C, H, W, O, K, OH, OW, P, CKK int }

func convGeometry(x, w tensor.Shape) convDims {
	d := convDims{B: x[0], C: x[1], H: x[2], W: x[3], O: w[0], K: w[2]}
	d.OH, d.OW = d.H-d.K+1, d.W-d.K+1
	d.P, d.CKK = d.OH*d.OW, d.C*d.K*d.K
	return d
}

func (o *conv2dOp) Do(in ...G.Value) (G.Value, error) {
	d := convGeometry(dims(in[0]), dims(in[1]))
	cols := f32(buffer(&o.cols, d.B*d.P, d.CKK))
	im2col(f32(in[0]), cols, d)
	tmp := f32(buffer(&o.tmp, d.B*d.P, d.O))
	gemm.Sgemm(false, true, d.B*d.P, d.O, d.CKK, 1, cols, d.CKK, f32(in[1]), d.CKK, 0, tmp, d.O)
	y := buffer(&o.out, d.B, d.O, d.OH, d.OW)
	channelsFirst(tmp, f32(y), d.B, d.P, d.O)
	return y, nil
}

func (o *conv2dOp) DiffWRT(int) []bool { return []bool{true, true} }
func (o *conv2dOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dyt, err := G.ApplyOp(&channelsLastOp{opBase: newBase(o.name + ".dyT")}, grad)
	if err != nil {
		return nil, err
	}
	dx, err := G.ApplyOp(&convGradXOp{opBase: newBase(o.name + ".dx"), fwd: o}, dyt, inputs[0], inputs[1])
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(&convGradWOp{opBase: newBase(o.name + ".dw"), fwd: o}, dyt, inputs[1])
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw}, nil
}

// im2col writes the patches of x [B, C, H, W] as rows of cols [B·P, C·K·K], in
// PyTorch's filter order (c, ki, kj).
func im2col(x, cols []float32, d convDims) {
	row := 0
	for b := 0; b < d.B; b++ {
		img := x[b*d.C*d.H*d.W:]
		for oh := 0; oh < d.OH; oh++ {
			for ow := 0; ow < d.OW; ow++ {
				dst := cols[row*d.CKK : (row+1)*d.CKK]
				i := 0
				for c := 0; c < d.C; c++ {
					plane := img[c*d.H*d.W:]
					for ki := 0; ki < d.K; ki++ {
						src := plane[(oh+ki)*d.W+ow : (oh+ki)*d.W+ow+d.K]
						// K is 5 or 1 here: a loop beats memmove's call for so few values.
						for kj, v := range src {
							dst[i+kj] = v
						}
						i += d.K
					}
				}
				row++
			}
		}
	}
}

// col2im adds the patch gradients dcols [B·P, C·K·K] back into dx [B, C, H, W].
func col2im(dcols, dx []float32, d convDims) {
	clear(dx)
	row := 0
	for b := 0; b < d.B; b++ {
		img := dx[b*d.C*d.H*d.W:]
		for oh := 0; oh < d.OH; oh++ {
			for ow := 0; ow < d.OW; ow++ {
				src := dcols[row*d.CKK : (row+1)*d.CKK]
				i := 0
				for c := 0; c < d.C; c++ {
					plane := img[c*d.H*d.W:]
					for ki := 0; ki < d.K; ki++ {
						dst := plane[(oh+ki)*d.W+ow : (oh+ki)*d.W+ow+d.K]
						for kj, v := range src[i : i+d.K] {
							dst[kj] += v
						}
						i += d.K
					}
				}
				row++
			}
		}
	}
}

// channelsFirst turns [B, P, O] into [B, O, P]; channelsLast the reverse.
func channelsFirst(src, dst []float32, b, p, o int) {
	for i := 0; i < b; i++ {
		s, t := src[i*p*o:(i+1)*p*o], dst[i*p*o:(i+1)*p*o]
		for pi := 0; pi < p; pi++ {
			for oi, v := range s[pi*o : (pi+1)*o] {
				t[oi*p+pi] = v
			}
		}
	}
}

func channelsLast(src, dst []float32, b, o, p int) {
	for i := 0; i < b; i++ {
		s, t := src[i*p*o:(i+1)*p*o], dst[i*p*o:(i+1)*p*o]
		for oi := 0; oi < o; oi++ {
			for pi, v := range s[oi*p : (oi+1)*p] {
				t[pi*o+oi] = v
			}
		}
	}
}

// channelsLastOp lays a [B, O, OH, OW] gradient out as [B·P, O] rows, matching
// the forward product's output.
type channelsLastOp struct {
	opBase
	out *tensor.Dense
}

func (o *channelsLastOp) Arity() int    { return 1 }
func (o *channelsLastOp) Type() hm.Type { return hm.NewFnType(tensorOf(4), tensorOf(2)) }
func (o *channelsLastOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := shapeOf(in[0])
	return tensor.Shape{s[0] * s[2] * s[3], s[1]}, nil
}
func (o *channelsLastOp) Do(in ...G.Value) (G.Value, error) {
	s := dims(in[0])
	p := s[2] * s[3]
	y := buffer(&o.out, s[0]*p, s[1])
	channelsLast(f32(in[0]), f32(y), s[0], s[1], p)
	return y, nil
}

// convGradWOp is dw [O, C·K·K] = dyᵀ · cols, from the forward's patches.
type convGradWOp struct {
	opBase
	fwd *conv2dOp
	out *tensor.Dense
}

func (o *convGradWOp) Arity() int    { return 2 }
func (o *convGradWOp) Type() hm.Type { return hm.NewFnType(tensorOf(2), tensorOf(4), tensorOf(4)) }
func (o *convGradWOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(in[1]).Clone(), nil
}
func (o *convGradWOp) Do(in ...G.Value) (G.Value, error) {
	dyt, w := dims(in[0]), dims(in[1])
	rows, outC := dyt[0], dyt[1]
	ckk := w[1] * w[2] * w[3]
	dw := buffer(&o.out, w...)
	gemm.Sgemm(true, false, outC, ckk, rows, 1, f32(in[0]), outC, f32(o.fwd.cols), ckk, 0, f32(dw), ckk)
	return dw, nil
}

// convGradXOp is dx: the patch gradients dy · w, folded back by col2im.
type convGradXOp struct {
	opBase
	fwd   *conv2dOp
	dcols *tensor.Dense
	out   *tensor.Dense
}

func (o *convGradXOp) Arity() int { return 3 }
func (o *convGradXOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(4), tensorOf(4), tensorOf(4))
}
func (o *convGradXOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(in[1]).Clone(), nil
}
func (o *convGradXOp) Do(in ...G.Value) (G.Value, error) {
	d := convGeometry(dims(in[1]), dims(in[2]))
	dcols := f32(buffer(&o.dcols, d.B*d.P, d.CKK))
	gemm.Sgemm(false, false, d.B*d.P, d.CKK, d.O, 1, f32(in[0]), d.O, f32(in[2]), d.CKK, 0, dcols, d.CKK)
	dx := buffer(&o.out, d.B, d.C, d.H, d.W)
	col2im(dcols, f32(dx), d)
	return dx, nil
}

// maxPoolOp is 2-D max pooling with a square window and an equal stride (no
// padding), remembering where each maximum came from for the gradient. Among
// equal values the first in row-major window order wins, as in PyTorch.
type maxPoolOp struct {
	opBase
	k     int
	where []int32 // flat input index of each output's maximum
	out   *tensor.Dense
}

func (o *maxPoolOp) Arity() int    { return 1 }
func (o *maxPoolOp) Type() hm.Type { return hm.NewFnType(tensorOf(4), tensorOf(4)) }
func (o *maxPoolOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := shapeOf(in[0])
	return tensor.Shape{s[0], s[1], s[2] / o.k, s[3] / o.k}, nil
}
func (o *maxPoolOp) Do(in ...G.Value) (G.Value, error) {
	s := dims(in[0])
	planes, h, w := s[0]*s[1], s[2], s[3]
	oh, ow := h/o.k, w/o.k
	y := buffer(&o.out, s[0], s[1], oh, ow)
	x, yd := f32(in[0]), f32(y)
	if len(o.where) != len(yd) {
		o.where = make([]int32, len(yd))
	}
	if o.k == 2 {
		pool2(x, yd, o.where, planes, h, w)
		return y, nil
	}
	i := 0
	for p := 0; p < planes; p++ {
		base := p * h * w
		for r := 0; r < oh; r++ {
			for c := 0; c < ow; c++ {
				best := base + r*o.k*w + c*o.k
				for ki := 0; ki < o.k; ki++ {
					for kj := 0; kj < o.k; kj++ {
						if j := base + (r*o.k+ki)*w + c*o.k + kj; x[j] > x[best] {
							best = j
						}
					}
				}
				yd[i], o.where[i] = x[best], int32(best)
				i++
			}
		}
	}
	return y, nil
}
func (o *maxPoolOp) DiffWRT(int) []bool { return []bool{true} }
func (o *maxPoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&maxPoolGradOp{opBase: newBase(o.name + ".grad"), fwd: o}, inputs[0], grad)
	return G.Nodes{dx}, err
}

// pool2 is 2x2 max pooling, the only window LeNet-5 uses, unrolled.
func pool2(x, y []float32, where []int32, planes, h, w int) {
	oh, ow := h/2, w/2
	i := 0
	for p := 0; p < planes; p++ {
		for r := 0; r < oh; r++ {
			top := p*h*w + 2*r*w
			row0, row1 := x[top:top+w], x[top+w:top+2*w]
			for c := 0; c < ow; c++ {
				j := 2 * c
				best, at := row0[j], top+j
				if v := row0[j+1]; v > best {
					best, at = v, top+j+1
				}
				if v := row1[j]; v > best {
					best, at = v, top+w+j
				}
				if v := row1[j+1]; v > best {
					best, at = v, top+w+j+1
				}
				y[i], where[i] = best, int32(at)
				i++
			}
		}
	}
}

// maxPoolGradOp routes each output's gradient to the input that was the maximum.
type maxPoolGradOp struct {
	opBase
	fwd *maxPoolOp
	out *tensor.Dense
}

func (o *maxPoolGradOp) Arity() int { return 2 }
func (o *maxPoolGradOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(4), tensorOf(4), tensorOf(4))
}
func (o *maxPoolGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(in[0]).Clone(), nil
}
func (o *maxPoolGradOp) Do(in ...G.Value) (G.Value, error) {
	dx := buffer(&o.out, dims(in[0])...)
	d := f32(dx)
	clear(d)
	for i, g := range f32(in[1]) {
		d[o.fwd.where[i]] += g
	}
	return dx, nil
}

// reshapeOp views its input under another shape of the same size without
// copying (the flatten between LeNet-5's convolutions and its fc layers); its
// gradient is the reverse view.
type reshapeOp struct {
	opBase
	from, to tensor.Shape
	src      []float32
	out      *tensor.Dense
}

func (o *reshapeOp) Arity() int { return 1 }
func (o *reshapeOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(len(o.from)), tensorOf(len(o.to)))
}
func (o *reshapeOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	if shapeOf(in[0]).TotalSize() != o.to.TotalSize() {
		return nil, fmt.Errorf("reshape: %v does not fit %v", shapeOf(in[0]), o.to)
	}
	return o.to.Clone(), nil
}
func (o *reshapeOp) Do(in ...G.Value) (G.Value, error) {
	x := f32(in[0])
	if o.out == nil || &o.src[0] != &x[0] {
		o.src = x
		o.out = tensor.New(tensor.WithShape(o.to...), tensor.WithBacking(x))
	}
	return o.out, nil
}
func (o *reshapeOp) DiffWRT(int) []bool { return []bool{true} }
func (o *reshapeOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	back, err := G.ApplyOp(&reshapeOp{opBase: newBase(o.name + ".grad"), from: o.to, to: o.from}, grad)
	return G.Nodes{back}, err
}
