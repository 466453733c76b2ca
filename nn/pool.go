package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/internal/op"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "maxpool2d",
		Summary: "nn.MaxPool2d (floor mode; padding counts as -inf)",
		New:     func() arch.Layer { return &Pool2d{max: true} },
	})
	arch.RegisterLayer(arch.LayerType{
		Name:    "avgpool2d",
		Summary: "nn.AvgPool2d (floor mode; padded zeros count in the average: count_include_pad)",
		New:     func() arch.Layer { return &Pool2d{} },
	})
	arch.RegisterLayer(arch.LayerType{
		Name:    "adaptive_avgpool2d",
		Summary: "nn.AdaptiveAvgPool2d(1): the mean of each channel, output [C, 1, 1]",
		New:     func() arch.Layer { return &GlobalAvgPool{} },
	})
}

// Pool2d is nn.MaxPool2d or nn.AvgPool2d.
type Pool2d struct {
	Kernel  Pair `json:"kernel" doc:"window size: n, or [kh, kw]"`
	Stride  Pair `json:"stride" doc:"step between windows: n, or [sh, sw] (default: the kernel)"`
	Padding Pair `json:"padding" doc:"padding on each side: n, or [ph, pw]; at most half the kernel"`
	max     bool
}

// Validate requires a kernel, fills the stride from it, and bounds the
// padding as PyTorch does.
func (p *Pool2d) Validate() error {
	var errs config.Errors
	if p.Kernel[0] == 0 || p.Kernel[1] == 0 {
		errs = append(errs, config.Errorf("kernel", "missing or 0: the window size, like 2 or [3, 3]"))
	}
	if p.Stride == (Pair{}) {
		p.Stride = p.Kernel
	}
	if p.Stride[0] == 0 || p.Stride[1] == 0 {
		errs = append(errs, config.Errorf("stride", "must be at least 1"))
	}
	if 2*p.Padding[0] > p.Kernel[0] || 2*p.Padding[1] > p.Kernel[1] {
		errs = append(errs, config.Errorf("padding", "%v is more than half the kernel %v (PyTorch refuses it too)", p.Padding, p.Kernel))
	}
	return errs.Err()
}

func (p *Pool2d) Shape(in []arch.Shape) (arch.Shape, error) {
	x := in[0]
	if len(x) != 3 {
		return nil, fmt.Errorf("takes images [channels, height, width], not %v", x)
	}
	var out [2]int
	for i, side := range x[1:] {
		if side+2*p.Padding[i] < p.Kernel[i] {
			return nil, fmt.Errorf("the %dx%d input is smaller than the window %v", x[1], x[2], p.Kernel)
		}
		out[i] = outSize(side, p.Kernel[i], p.Stride[i], p.Padding[i], 1)
	}
	return arch.Shape{x[0], out[0], out[1]}, nil
}

func (*Pool2d) Tensors([]arch.Shape) []arch.Tensor  { return nil }
func (*Pool2d) MACs([]arch.Shape, arch.Shape) int64 { return 0 }

func (p *Pool2d) Build(b Builder, in []*G.Node) (*G.Node, error) {
	if p.max {
		return G.ApplyOp(&maxPoolOp{Base: op.NewBase(b.Name()), p: *p}, in[0])
	}
	return G.ApplyOp(&avgPoolOp{Base: op.NewBase(b.Name()), p: *p}, in[0])
}

// poolDims is a pooling's geometry.
type poolDims struct {
	planes, H, W, OH, OW, KH, KW, SH, SW, PH, PW int
}

func (p *Pool2d) geometry(s tensor.Shape) poolDims {
	return poolDims{planes: s[0] * s[1], H: s[2], W: s[3],
		OH: outSize(s[2], p.Kernel[0], p.Stride[0], p.Padding[0], 1),
		OW: outSize(s[3], p.Kernel[1], p.Stride[1], p.Padding[1], 1),
		KH: p.Kernel[0], KW: p.Kernel[1], SH: p.Stride[0], SW: p.Stride[1], PH: p.Padding[0], PW: p.Padding[1]}
}

func poolShape(p *Pool2d, in G.DimSizer) (tensor.Shape, error) {
	s := op.ShapeOf(in)
	d := p.geometry(s)
	if d.OH < 1 || d.OW < 1 {
		return nil, fmt.Errorf("pooling: input %v is smaller than the window %v", s, p.Kernel)
	}
	return tensor.Shape{s[0], s[1], d.OH, d.OW}, nil
}

// maxPoolOp is 2-D max pooling, remembering where each maximum came from for
// the gradient. Among equal values the first in row-major window order wins,
// as in PyTorch; padding never wins.
type maxPoolOp struct {
	op.Base
	p     Pool2d
	where []int32 // flat input index of each output's maximum
	out   *tensor.Dense
}

func (o *maxPoolOp) Arity() int   { return 1 }
func (o *maxPoolOp) Type() hmType { return op.Fn(4, 4) }
func (o *maxPoolOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return poolShape(&o.p, in[0])
}
func (o *maxPoolOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	d := o.p.geometry(s)
	y := op.Buffer(&o.out, s[0], s[1], d.OH, d.OW)
	x, yd := op.F32(in[0]), op.F32(y)
	if len(o.where) != len(yd) {
		o.where = make([]int32, len(yd))
	}
	if o.p.Kernel == Square(2) && o.p.Stride == Square(2) && o.p.Padding == Square(0) {
		pool2(x, yd, o.where, d.planes, d.H, d.W)
	} else {
		maxPool(x, yd, o.where, d)
	}
	return y, nil
}
func (o *maxPoolOp) DiffWRT(int) []bool { return []bool{true} }
func (o *maxPoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&maxPoolGradOp{Base: op.NewBase(o.Name() + ".grad"), fwd: o}, inputs[0], grad)
	return G.Nodes{dx}, err
}

// pool2 is 2x2 max pooling with stride 2, unrolled: LeNet-5's.
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

// maxPool is any window, stride and padding. A NaN wins, as in PyTorch.
func maxPool(x, y []float32, where []int32, d poolDims) {
	i := 0
	for p := 0; p < d.planes; p++ {
		base := p * d.H * d.W
		for oh := 0; oh < d.OH; oh++ {
			h0, h1 := max(oh*d.SH-d.PH, 0), min(oh*d.SH-d.PH+d.KH, d.H)
			for ow := 0; ow < d.OW; ow++ {
				w0, w1 := max(ow*d.SW-d.PW, 0), min(ow*d.SW-d.PW+d.KW, d.W)
				best, at := float32(math.Inf(-1)), -1
				for r := h0; r < h1; r++ {
					row := base + r*d.W
					for c := w0; c < w1; c++ {
						if v := x[row+c]; v > best || at < 0 || v != v {
							best, at = v, row+c
							if v != v {
								r, c = h1, w1
							}
						}
					}
				}
				y[i], where[i] = best, int32(at)
				i++
			}
		}
	}
}

// maxPoolGradOp routes each output's gradient to the input that was the maximum.
type maxPoolGradOp struct {
	op.Base
	fwd *maxPoolOp
	out *tensor.Dense
}

func (o *maxPoolGradOp) Arity() int   { return 2 }
func (o *maxPoolGradOp) Type() hmType { return op.Fn(4, 4, 4) }
func (o *maxPoolGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *maxPoolGradOp) Do(in ...G.Value) (G.Value, error) {
	dx := op.Buffer(&o.out, op.Dims(in[0])...)
	d := op.F32(dx)
	clear(d)
	for i, g := range op.F32(in[1]) {
		d[o.fwd.where[i]] += g
	}
	return dx, nil
}

// avgPoolOp is 2-D average pooling counting padded zeros in the average
// (count_include_pad): every window divides by KH·KW.
type avgPoolOp struct {
	op.Base
	p   Pool2d
	out *tensor.Dense
}

func (o *avgPoolOp) Arity() int   { return 1 }
func (o *avgPoolOp) Type() hmType { return op.Fn(4, 4) }
func (o *avgPoolOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return poolShape(&o.p, in[0])
}
func (o *avgPoolOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	d := o.p.geometry(s)
	y := op.Buffer(&o.out, s[0], s[1], d.OH, d.OW)
	x, yd := op.F32(in[0]), op.F32(y)
	div := float32(d.KH * d.KW)
	i := 0
	for p := 0; p < d.planes; p++ {
		base := p * d.H * d.W
		for oh := 0; oh < d.OH; oh++ {
			h0, h1 := max(oh*d.SH-d.PH, 0), min(oh*d.SH-d.PH+d.KH, d.H)
			for ow := 0; ow < d.OW; ow++ {
				w0, w1 := max(ow*d.SW-d.PW, 0), min(ow*d.SW-d.PW+d.KW, d.W)
				var sum float32
				for r := h0; r < h1; r++ {
					for _, v := range x[base+r*d.W+w0 : base+r*d.W+w1] {
						sum += v
					}
				}
				yd[i] = sum / div
				i++
			}
		}
	}
	return y, nil
}
func (o *avgPoolOp) DiffWRT(int) []bool { return []bool{true} }
func (o *avgPoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&avgPoolGradOp{Base: op.NewBase(o.Name() + ".grad"), fwd: o}, inputs[0], grad)
	return G.Nodes{dx}, err
}

// avgPoolGradOp spreads each output's gradient evenly over its window.
type avgPoolGradOp struct {
	op.Base
	fwd *avgPoolOp
	out *tensor.Dense
}

func (o *avgPoolGradOp) Arity() int   { return 2 }
func (o *avgPoolGradOp) Type() hmType { return op.Fn(4, 4, 4) }
func (o *avgPoolGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *avgPoolGradOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	d := o.fwd.p.geometry(s)
	dx := op.Buffer(&o.out, s...)
	dd, dy := op.F32(dx), op.F32(in[1])
	clear(dd)
	div := float32(d.KH * d.KW)
	i := 0
	for p := 0; p < d.planes; p++ {
		base := p * d.H * d.W
		for oh := 0; oh < d.OH; oh++ {
			h0, h1 := max(oh*d.SH-d.PH, 0), min(oh*d.SH-d.PH+d.KH, d.H)
			for ow := 0; ow < d.OW; ow++ {
				w0, w1 := max(ow*d.SW-d.PW, 0), min(ow*d.SW-d.PW+d.KW, d.W)
				g := dy[i] / div
				for r := h0; r < h1; r++ {
					row := dd[base+r*d.W+w0 : base+r*d.W+w1]
					for j := range row {
						row[j] += g
					}
				}
				i++
			}
		}
	}
	return dx, nil
}

// GlobalAvgPool is nn.AdaptiveAvgPool2d(1).
type GlobalAvgPool struct{}

func (*GlobalAvgPool) Shape(in []arch.Shape) (arch.Shape, error) {
	if len(in[0]) != 3 {
		return nil, fmt.Errorf("takes images [channels, height, width], not %v", in[0])
	}
	return arch.Shape{in[0][0], 1, 1}, nil
}
func (*GlobalAvgPool) Tensors([]arch.Shape) []arch.Tensor  { return nil }
func (*GlobalAvgPool) MACs([]arch.Shape, arch.Shape) int64 { return 0 }

func (*GlobalAvgPool) Build(b Builder, in []*G.Node) (*G.Node, error) {
	return G.ApplyOp(&globalAvgOp{Base: op.NewBase(b.Name())}, in[0])
}

// globalAvgOp averages each [H, W] plane: [B, C, H, W] -> [B, C, 1, 1]. The
// sum runs in float32 in plane order, like PyTorch's CPU kernel for small
// planes.
type globalAvgOp struct {
	op.Base
	out *tensor.Dense
}

func (o *globalAvgOp) Arity() int   { return 1 }
func (o *globalAvgOp) Type() hmType { return op.Fn(4, 4) }
func (o *globalAvgOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := op.ShapeOf(in[0])
	return tensor.Shape{s[0], s[1], 1, 1}, nil
}
func (o *globalAvgOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	plane := s[2] * s[3]
	y := op.Buffer(&o.out, s[0], s[1], 1, 1)
	x, yd := op.F32(in[0]), op.F32(y)
	for i := range yd {
		var sum float32
		for _, v := range x[i*plane : (i+1)*plane] {
			sum += v
		}
		yd[i] = sum / float32(plane)
	}
	return y, nil
}
func (o *globalAvgOp) DiffWRT(int) []bool { return []bool{true} }
func (o *globalAvgOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&globalAvgGradOp{Base: op.NewBase(o.Name() + ".grad")}, inputs[0], grad)
	return G.Nodes{dx}, err
}

// globalAvgGradOp spreads each channel's gradient over its plane.
type globalAvgGradOp struct {
	op.Base
	out *tensor.Dense
}

func (o *globalAvgGradOp) Arity() int   { return 2 }
func (o *globalAvgGradOp) Type() hmType { return op.Fn(4, 4, 4) }
func (o *globalAvgGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[0]).Clone(), nil
}
func (o *globalAvgGradOp) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	plane := s[2] * s[3]
	dx := op.Buffer(&o.out, s...)
	dd, dy := op.F32(dx), op.F32(in[1])
	for i, g := range dy {
		v := g / float32(plane)
		row := dd[i*plane : (i+1)*plane]
		for j := range row {
			row[j] = v
		}
	}
	return dx, nil
}
