package nn

import (
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/op"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "conv2d",
		Summary: "nn.Conv2d: weight [out, in/groups, kh, kw], bias [out]",
		New: func() arch.Layer {
			return &Conv2d{Stride: Square(1), Dilation: Square(1), Groups: 1, Bias: true}
		},
	})
}

// Conv2d is nn.Conv2d.
type Conv2d struct {
	Out      int  `json:"out" minimum:"1" doc:"output channels"`
	Kernel   Pair `json:"kernel" doc:"kernel size: n, or [kh, kw]"`
	Stride   Pair `json:"stride" doc:"stride: n, or [sh, sw]"`
	Padding  Pair `json:"padding" doc:"zero padding on each side: n, or [ph, pw]"`
	Dilation Pair `json:"dilation" doc:"spacing between kernel elements: n, or [dh, dw]"`
	Groups   int  `json:"groups" minimum:"1" doc:"blocked connections: in and out channels split into this many groups (groups = in channels: a depthwise convolution)"`
	Bias     bool `json:"bias" doc:"add a learnable bias"`
}

// Validate requires out and kernel, and positive strides and dilations.
func (c *Conv2d) Validate() error {
	var errs config.Errors
	if c.Out == 0 {
		errs = append(errs, config.Errorf("out", "missing: the number of output channels"))
	}
	if c.Kernel[0] == 0 || c.Kernel[1] == 0 {
		errs = append(errs, config.Errorf("kernel", "missing or 0: the kernel size, like 3 or [3, 1]"))
	}
	if c.Stride[0] == 0 || c.Stride[1] == 0 {
		errs = append(errs, config.Errorf("stride", "must be at least 1"))
	}
	if c.Dilation[0] == 0 || c.Dilation[1] == 0 {
		errs = append(errs, config.Errorf("dilation", "must be at least 1"))
	}
	if c.Groups > 0 && c.Out%c.Groups != 0 {
		errs = append(errs, config.Errorf("groups", "%d output channels do not split into %d groups", c.Out, c.Groups))
	}
	return errs.Err()
}

func (c *Conv2d) Shape(in []arch.Shape) (arch.Shape, error) {
	x := in[0]
	if len(x) != 3 {
		return nil, fmt.Errorf("takes images [channels, height, width], not %v (set model.input, or put the convolutions before any flatten)", x)
	}
	if x[0]%c.Groups != 0 {
		return nil, fmt.Errorf("%d input channels do not split into %d groups", x[0], c.Groups)
	}
	var out [2]int
	for i, side := range x[1:] {
		reach := c.Dilation[i]*(c.Kernel[i]-1) + 1
		if side+2*c.Padding[i] < reach {
			return nil, fmt.Errorf("the %dx%d input (padded by %v) is smaller than the kernel's reach %v", x[1], x[2], c.Padding, c.Kernel)
		}
		out[i] = outSize(side, c.Kernel[i], c.Stride[i], c.Padding[i], c.Dilation[i])
	}
	return arch.Shape{c.Out, out[0], out[1]}, nil
}

func (c *Conv2d) Tensors(in []arch.Shape) []arch.Tensor {
	ts := []arch.Tensor{{Suffix: "weight", Shape: []int{c.Out, in[0][0] / c.Groups, c.Kernel[0], c.Kernel[1]}, Role: arch.Weight}}
	if c.Bias {
		ts = append(ts, arch.Tensor{Suffix: "bias", Shape: []int{c.Out}, Role: arch.Param})
	}
	return ts
}

func (c *Conv2d) MACs(in []arch.Shape, out arch.Shape) int64 {
	return int64(c.Out) * int64(in[0][0]/c.Groups) * int64(c.Kernel[0]*c.Kernel[1]) * int64(out[1]*out[2])
}

// Caps: a grouped convolution has no single matrix to factor.
func (c *Conv2d) Caps() arch.Caps {
	return arch.Caps{Static: true, Dynamic: true, QAT: true, Factor: c.Groups == 1, Adapter: c.Groups == 1, Channels: true}
}

// Init is nn.Conv2d's reset_parameters, like nn.Linear's.
func (c *Conv2d) Init(ts []InitTensor, rng *rand.Rand) { initFanIn(ts, rng) }

// Build adds the convolution and its bias. A factored layer is this
// convolution to rank k channels (NAME.0) followed by a 1x1 convolution
// (NAME.1) carrying the bias.
func (c *Conv2d) Build(b Builder, in []*G.Node) (*G.Node, error) {
	if q := b.Int8(); q != nil {
		return c.buildInt8(b, in[0], q)
	}
	h := in[0]
	var err error
	for i, w := range b.Weights() {
		geo := convParams{stride: c.Stride, padding: c.Padding, dilation: c.Dilation, groups: c.Groups}
		if i == 1 {
			geo = convParams{stride: Square(1), dilation: Square(1), groups: 1}
		}
		if h, err = G.ApplyOp(&conv2dOp{Base: op.NewBase(fmt.Sprintf("%s.conv%d", b.Name(), i)), convParams: geo}, h, w); err != nil {
			return nil, err
		}
	}
	if bias := b.Param("bias"); bias != nil {
		return G.ApplyOp(&channelBiasOp{Base: op.NewBase(b.Name() + ".bias")}, h, bias)
	}
	return h, nil
}

// convParams are a convolution's settings besides its weight.
type convParams struct {
	stride, padding, dilation Pair
	groups                    int
}

// plain is a stride-1, unpadded, undilated, ungrouped convolution: the fast
// copies of im2col and col2im apply.
func (p convParams) plain() bool {
	return p.stride == Square(1) && p.padding == Square(0) && p.dilation == Square(1) && p.groups == 1
}

// conv2dOp is a 2-D convolution of x [B, C, H, W] with w [O, C/G, KH, KW],
// PyTorch's Conv2d without bias, as one matrix product per group over the
// whole batch: the patches of every output position form the columns of
// cols [C·KH·KW, B·P] (P = OH·OW), and out [O, B·P] = w · cols. One large
// product keeps the GEMM fast and its result independent of how many threads
// run it; gorgonia's own Conv2d allocates tens of megabytes per call. Patches
// as columns, not rows, make every copy in and out of the product a run of an
// output row (OW values) instead of KW values: small convolutions are bound
// by that memory traffic, not by arithmetic.
type conv2dOp struct {
	op.Base
	convParams
	cols    *tensor.Dense // plain: the patches of the last forward, for the gradients
	tmp     *tensor.Dense // plain: [O, B·P] before the reorder to [B, O, P]
	tall    tallForward   // "same" stride-1 convolutions (see convtaps.go)
	chunked convForward   // the others (see convchunk.go)
	out     *tensor.Dense
}

func (o *conv2dOp) Arity() int   { return 2 }
func (o *conv2dOp) Type() hmType { return op.Fn(4, 4, 4) }
func (o *conv2dOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, w := op.ShapeOf(in[0]), op.ShapeOf(in[1])
	if x[1] != w[1]*o.groups || w[0]%o.groups != 0 {
		return nil, fmt.Errorf("conv: input %v does not fit filters %v in %d groups", x, w, o.groups)
	}
	d := o.geometry(x, w)
	if d.OH < 1 || d.OW < 1 {
		return nil, fmt.Errorf("conv: input %v is smaller than filters %v", x, w)
	}
	return tensor.Shape{x[0], w[0], d.OH, d.OW}, nil
}

// convDims is a convolution's geometry from its input and filter shapes.
type convDims struct {
	convParams
	B, C, H, W, O, KH, KW, OH, OW, P int
	Cg, Og, CKK                      int // per group: input and output channels, patch length
}

func (p convParams) geometry(x, w tensor.Shape) convDims {
	d := convDims{convParams: p, B: x[0], C: x[1], H: x[2], W: x[3], O: w[0], KH: w[2], KW: w[3]}
	d.OH = outSize(d.H, d.KH, d.stride[0], d.padding[0], d.dilation[0])
	d.OW = outSize(d.W, d.KW, d.stride[1], d.padding[1], d.dilation[1])
	d.P = d.OH * d.OW
	d.Cg, d.Og = d.C/d.groups, d.O/d.groups
	d.CKK = d.Cg * d.KH * d.KW
	return d
}

func (o *conv2dOp) Do(in ...G.Value) (G.Value, error) {
	d := o.geometry(op.Dims(in[0]), op.Dims(in[1]))
	if !d.plain() {
		y := op.Buffer(&o.out, d.B, d.O, d.OH, d.OW)
		if d.tapped() {
			o.tall.run(d, op.F32(in[0]), op.F32(in[1]), op.F32(y), false)
		} else {
			o.chunked.run(d, op.F32(in[0]), op.F32(in[1]), op.F32(y))
		}
		return y, nil
	}
	n := d.B * d.P
	cols := op.F32(op.Buffer(&o.cols, d.C*d.KH*d.KW, n))
	im2col(op.F32(in[0]), cols, d)
	tmp := op.F32(op.Buffer(&o.tmp, d.O, n))
	w := op.F32(in[1])
	for g := 0; g < d.groups; g++ {
		gemm.Sgemm(false, false, d.Og, n, d.CKK, 1, w[g*d.Og*d.CKK:], d.CKK, cols[g*d.CKK*n:], n, 0, tmp[g*d.Og*n:], n)
	}
	y := op.Buffer(&o.out, d.B, d.O, d.OH, d.OW)
	swapOuter(tmp, op.F32(y), d.O, d.B, d.P)
	return y, nil
}

func (o *conv2dOp) DiffWRT(int) []bool { return []bool{true, true} }
func (o *conv2dOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if !o.plain() {
		return o.chunkedDiff(inputs, grad)
	}
	dyt, err := G.ApplyOp(&channelsOuterOp{Base: op.NewBase(o.Name() + ".dyT")}, grad)
	if err != nil {
		return nil, err
	}
	dx, err := G.ApplyOp(&convGradXOp{Base: op.NewBase(o.Name() + ".dx"), fwd: o}, dyt, inputs[0], inputs[1])
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(&convGradWOp{Base: op.NewBase(o.Name() + ".dw"), fwd: o}, dyt, inputs[1])
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw}, nil
}

// im2col writes the patches of x [B, C, H, W] as columns of cols [C·K·K, B·P]
// for a plain convolution: row (c, ki, kj), in PyTorch's filter order, holds
// x[b, c, oh+ki, ow+kj] for every (b, oh, ow), so each output row is one
// contiguous copy.
func im2col(x, cols []float32, d convDims) {
	n := d.B * d.P
	r := 0
	for c := 0; c < d.C; c++ {
		for ki := 0; ki < d.KH; ki++ {
			for kj := 0; kj < d.KW; kj++ {
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

// validRange is the output positions [lo, hi) whose input position
// o*stride + start falls inside [0, size), out of outs positions.
func validRange(start, stride, size, outs int) (lo, hi int) {
	lo = 0
	if start < 0 {
		lo = (-start + stride - 1) / stride
	}
	hi = outs
	if last := (size - 1 - start); last < 0 {
		hi = 0
	} else {
		hi = min(outs, last/stride+1)
	}
	return min(lo, hi), hi
}

// col2im adds the patch gradients dcols [C·K·K, B·P] back into dx [B, C, H, W]
// for a plain convolution. Each element of dx sums its contributions in the
// order of the output positions (oh, then ow) that read it, as a loop over
// rows of patches would: kj runs downwards because, for one element, a larger
// kj is a smaller ow.
func col2im(dcols, dx []float32, d convDims) {
	clear(dx)
	n := d.B * d.P
	for b := 0; b < d.B; b++ {
		for oh := 0; oh < d.OH; oh++ {
			at := b*d.P + oh*d.OW
			for c := 0; c < d.C; c++ {
				plane := dx[(b*d.C+c)*d.H*d.W:]
				for ki := 0; ki < d.KH; ki++ {
					line := plane[(oh+ki)*d.W : (oh+ki+1)*d.W]
					for kj := d.KW - 1; kj >= 0; kj-- {
						r := (c*d.KH+ki)*d.KW + kj
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
	op.Base
	out *tensor.Dense
}

func (o *channelsOuterOp) Arity() int   { return 1 }
func (o *channelsOuterOp) Type() hmType { return op.Fn(4, 2) }
func (o *channelsOuterOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := op.ShapeOf(in[0])
	return tensor.Shape{s[1], s[0] * s[2] * s[3]}, nil
}
func (o *channelsOuterOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	p := s[2] * s[3]
	y := op.Buffer(&o.out, s[1], s[0]*p)
	swapOuter(op.F32(in[0]), op.F32(y), s[0], s[1], p)
	return y, nil
}

// convGradWOp is a plain convolution's dw [O, C·KH·KW] = dy · colsᵀ, from
// the forward's patches.
type convGradWOp struct {
	op.Base
	fwd *conv2dOp
	out *tensor.Dense
}

func (o *convGradWOp) Arity() int   { return 2 }
func (o *convGradWOp) Type() hmType { return op.Fn(2, 4, 4) }
func (o *convGradWOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[1]).Clone(), nil
}
func (o *convGradWOp) Do(in ...G.Value) (G.Value, error) {
	dys, w := op.Dims(in[0]), op.Dims(in[1])
	outC, n := dys[0], dys[1]
	groups := o.fwd.groups
	og := outC / groups
	ckk := w[1] * w[2] * w[3]
	dw := op.Buffer(&o.out, w...)
	dy, cols, dwd := op.F32(in[0]), op.F32(o.fwd.cols), op.F32(dw)
	for g := 0; g < groups; g++ {
		gemm.Sgemm(false, true, og, ckk, n, 1, dy[g*og*n:], n, cols[g*ckk*n:], n, 0, dwd[g*og*ckk:], ckk)
	}
	return dw, nil
}

// convGradXOp is a plain convolution's dx: the patch gradients wᵀ · dy,
// folded back by col2im.
type convGradXOp struct {
	op.Base
	fwd   *conv2dOp
	dcols *tensor.Dense
	out   *tensor.Dense
}

func (o *convGradXOp) Arity() int   { return 3 }
func (o *convGradXOp) Type() hmType { return op.Fn(2, 4, 4, 4) }
func (o *convGradXOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[1]).Clone(), nil
}
func (o *convGradXOp) Do(in ...G.Value) (G.Value, error) {
	d := o.fwd.geometry(op.Dims(in[1]), op.Dims(in[2]))
	n := d.B * d.P
	dcols := op.F32(op.Buffer(&o.dcols, d.C*d.KH*d.KW, n))
	w, dy := op.F32(in[2]), op.F32(in[0])
	for g := 0; g < d.groups; g++ {
		gemm.Sgemm(true, false, d.CKK, n, d.Og, 1, w[g*d.Og*d.CKK:], d.CKK, dy[g*d.Og*n:], n, 0, dcols[g*d.CKK*n:], n)
	}
	dx := op.Buffer(&o.out, d.B, d.C, d.H, d.W)
	col2im(dcols, op.F32(dx), d)
	return dx, nil
}

// channelBiasOp adds a per-channel bias to a [batch, channels, h, w] tensor.
type channelBiasOp struct {
	op.Base
	out *tensor.Dense
}

func (o *channelBiasOp) Arity() int   { return 2 }
func (o *channelBiasOp) Type() hmType { return op.Fn(4, 1, 4) }
func (o *channelBiasOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *channelBiasOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	y := op.Buffer(&o.out, s...)
	x, b, yd := op.F32(in[0]), op.F32(in[1]), op.F32(y)
	plane := s[2] * s[3]
	for i := 0; i < s[0]*s[1]; i++ {
		bias := b[i%s[1]]
		for j := i * plane; j < (i+1)*plane; j++ {
			yd[j] = x[j] + bias
		}
	}
	return y, nil
}
func (o *channelBiasOp) DiffWRT(int) []bool { return []bool{true, true} }
func (o *channelBiasOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	db, err := G.ApplyOp(&channelSumOp{Base: op.NewBase("channelBiasGrad")}, grad)
	return G.Nodes{grad, db}, err
}

// channelSumOp sums a [batch, channels, h, w] gradient per channel.
type channelSumOp struct {
	op.Base
	out *tensor.Dense
}

func (o *channelSumOp) Arity() int   { return 1 }
func (o *channelSumOp) Type() hmType { return op.Fn(4, 1) }
func (o *channelSumOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.ShapeOf(in[0])[1]}, nil
}
func (o *channelSumOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	db := op.Buffer(&o.out, s[1])
	g, d := op.F32(in[0]), op.F32(db)
	clear(d)
	plane := s[2] * s[3]
	for i := 0; i < s[0]*s[1]; i++ {
		var sum float32
		for _, v := range g[i*plane : (i+1)*plane] {
			sum += v
		}
		d[i%s[1]] += sum
	}
	return db, nil
}

// FactorShapes: the convolution to rank channels [rank, in, kh, kw], then a
// 1x1 convolution [out, rank, 1, 1].
func (c *Conv2d) FactorShapes(in []arch.Shape, rank int) (first, second []int) {
	return []int{rank, in[0][0], c.Kernel[0], c.Kernel[1]}, []int{c.Out, rank, 1, 1}
}
