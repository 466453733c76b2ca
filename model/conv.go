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
// whole batch: the K×K patches of every output position form the columns of
// cols [C·K·K, B·P] (P = OH·OW), and out [O, B·P] = w · cols. One large product
// keeps the GEMM fast and its result independent of how many threads run it;
// gorgonia's own Conv2d allocates tens of megabytes per call. Patches as
// columns, not rows, make every copy in and out of the product a contiguous run
// of an output row (OW values) instead of K values: LeNet-5's convolutions are
// bound by that memory traffic, not by arithmetic.
type conv2dOp struct {
	opBase
	cols *tensor.Dense // the patches of the last forward, for the gradients
	tmp  *tensor.Dense // [O, B·P] before the reorder to [B, O, P]
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
	n := d.B * d.P
	cols := f32(buffer(&o.cols, d.CKK, n))
	im2col(f32(in[0]), cols, d)
	tmp := f32(buffer(&o.tmp, d.O, n))
	gemm.Sgemm(false, false, d.O, n, d.CKK, 1, f32(in[1]), d.CKK, cols, n, 0, tmp, n)
	y := buffer(&o.out, d.B, d.O, d.OH, d.OW)
	swapOuter(tmp, f32(y), d.O, d.B, d.P)
	return y, nil
}

func (o *conv2dOp) DiffWRT(int) []bool { return []bool{true, true} }
func (o *conv2dOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dyt, err := G.ApplyOp(&channelsOuterOp{opBase: newBase(o.name + ".dyT")}, grad)
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

// im2col writes the patches of x [B, C, H, W] as columns of cols [C·K·K, B·P]:
// row (c, ki, kj), in PyTorch's filter order, holds x[b, c, oh+ki, ow+kj] for
// every (b, oh, ow), so each output row is one contiguous copy.
func im2col(x, cols []float32, d convDims) {
	n := d.B * d.P
	r := 0
	for c := 0; c < d.C; c++ {
		for ki := 0; ki < d.K; ki++ {
			for kj := 0; kj < d.K; kj++ {
				dst := cols[r*n : (r+1)*n]
				for b := 0; b < d.B; b++ {
					plane := x[(b*d.C+c)*d.H*d.W:]
					out := dst[b*d.P:]
					for oh := 0; oh < d.OH; oh++ {
						src := plane[(oh+ki)*d.W+kj : (oh+ki)*d.W+kj+d.OW]
						copy(out[oh*d.OW:(oh+1)*d.OW], src)
					}
				}
				r++
			}
		}
	}
}

// col2im adds the patch gradients dcols [C·K·K, B·P] back into dx [B, C, H, W].
// Each element of dx sums its contributions in the order of the output
// positions (oh, then ow) that read it, as a loop over rows of patches would:
// kj runs downwards because, for one element, a larger kj is a smaller ow.
func col2im(dcols, dx []float32, d convDims) {
	clear(dx)
	n := d.B * d.P
	for b := 0; b < d.B; b++ {
		for oh := 0; oh < d.OH; oh++ {
			at := b*d.P + oh*d.OW
			for c := 0; c < d.C; c++ {
				plane := dx[(b*d.C+c)*d.H*d.W:]
				for ki := 0; ki < d.K; ki++ {
					line := plane[(oh+ki)*d.W : (oh+ki+1)*d.W]
					for kj := d.K - 1; kj >= 0; kj-- {
						r := (c*d.K+ki)*d.K + kj
						src := dcols[r*n+at : r*n+at+d.OW]
						dst := line[kj : kj+d.OW]
						for i, v := range src {
							dst[i] += v
						}
					}
				}
			}
		}
	}
}

// swapOuter turns [A, B, P] into [B, A, P]: whole runs of P values move.
func swapOuter(src, dst []float32, a, b, p int) {
	for i := 0; i < a; i++ {
		for j := 0; j < b; j++ {
			copy(dst[(j*a+i)*p:(j*a+i+1)*p], src[(i*b+j)*p:(i*b+j+1)*p])
		}
	}
}

// channelsOuterOp lays a [B, O, OH, OW] gradient out as [O, B·P], matching the
// forward product's output.
type channelsOuterOp struct {
	opBase
	out *tensor.Dense
}

func (o *channelsOuterOp) Arity() int    { return 1 }
func (o *channelsOuterOp) Type() hm.Type { return hm.NewFnType(tensorOf(4), tensorOf(2)) }
func (o *channelsOuterOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := shapeOf(in[0])
	return tensor.Shape{s[1], s[0] * s[2] * s[3]}, nil
}
func (o *channelsOuterOp) Do(in ...G.Value) (G.Value, error) {
	s := dims(in[0])
	p := s[2] * s[3]
	y := buffer(&o.out, s[1], s[0]*p)
	swapOuter(f32(in[0]), f32(y), s[0], s[1], p)
	return y, nil
}

// convGradWOp is dw [O, C·K·K] = dy · colsᵀ, from the forward's patches.
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
	dy, w := dims(in[0]), dims(in[1])
	outC, n := dy[0], dy[1]
	ckk := w[1] * w[2] * w[3]
	dw := buffer(&o.out, w...)
	gemm.Sgemm(false, true, outC, ckk, n, 1, f32(in[0]), n, f32(o.fwd.cols), n, 0, f32(dw), ckk)
	return dw, nil
}

// convGradXOp is dx: the patch gradients wᵀ · dy, folded back by col2im.
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
	n := d.B * d.P
	dcols := f32(buffer(&o.dcols, d.CKK, n))
	gemm.Sgemm(true, false, d.CKK, n, d.O, 1, f32(in[2]), d.CKK, f32(in[0]), n, 0, dcols, n)
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
	if o.k != 2 {
		return nil, fmt.Errorf("max pooling: only the 2x2 window LeNet-5 uses is implemented, not %dx%d", o.k, o.k)
	}
	s := shapeOf(in[0])
	return tensor.Shape{s[0], s[1], s[2] / 2, s[3] / 2}, nil
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
	pool2(x, yd, o.where, planes, h, w) // InferShape allows only k = 2
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
