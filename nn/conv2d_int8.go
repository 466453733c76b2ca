package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/op"
	"github.com/shrink-ml/shrink/internal/qgemm"
)

// RunsStaticInt8: an ungrouped, undilated convolution with statically
// quantized inputs evaluates on integer kernels (Builder.Int8 with Static
// set), as PyTorch's quantized::conv2d does.
func (c *Conv2d) RunsStaticInt8() bool {
	return c.Groups == 1 && c.Dilation == Square(1)
}

// buildInt8 is the convolution on integer kernels, then its bias in float.
func (c *Conv2d) buildInt8(b Builder, x *G.Node, q *Int8) (*G.Node, error) {
	if len(q.Weights) != 1 || q.Static == nil {
		return nil, fmt.Errorf("conv: integer kernels need one weight and static input parameters")
	}
	w := q.Weights[0]
	shape := w.Shape
	if len(shape) != 4 {
		return nil, fmt.Errorf("conv: integer weight of shape %v, want [out, in, kh, kw]", shape)
	}
	o := newConvInt8Op(b.Name()+".int8", convParams{stride: c.Stride, padding: c.Padding, dilation: c.Dilation, groups: 1}, w, *q.Static)
	h, err := G.ApplyOp(o, x)
	if err != nil {
		return nil, err
	}
	if bias := b.Param("bias"); bias != nil {
		return G.ApplyOp(&channelBiasOp{Base: op.NewBase(b.Name() + ".bias")}, h, bias)
	}
	return h, nil
}

// convInt8Op is a convolution of x [B, C, H, W] with int8 weights [O, C,
// KH, KW], its input quantized with fixed parameters (static
// quantization): the codes are laid out channels-last with the padding
// holding the zero point (which stands for 0), the products summed
// exactly in int32 (internal/qgemm), then rescaled to float:
//
//	y[b][o][i][j] = float32(float32(acc - zp·Σw[o]) · (s_x·s_w[o]))
//
// each operation rounded on its own. The sums are exact, so this is the
// integer arithmetic of the quantized layer; against the float
// convolution of the fake-quantized input it differs only by that
// computation's own rounding.
//
// A stride-1 convolution reads its patches in place: in the padded
// channels-last image, the KW taps of one kernel row at a pixel are KW·C
// consecutive bytes, and the next pixel's start C bytes later, so each
// kernel row is one product over overlapping rows of A (qgemm.MatMulAdd,
// lda = C), computed for every pixel of the padded grid; the rows whose
// window leaves the image are discarded. Other strides copy each output
// pixel's patch into a row first (im2row) and run one product.
type convInt8Op struct {
	op.Base
	convParams
	o, c, kh, kw int
	act          qgemm.Params // the codes' parameters, zero point shifted to unsigned codes
	r            qgemm.Range
	rows         []*qgemm.Packed // stride 1: kernel row ki, [O, KW·C] in (kj, c) order
	full         *qgemm.Packed   // other strides: [O, KH·KW·C] in (ki, kj, c) order
	rowSum       []int32         // Σ w[o] over the whole filter
	mult         []float32       // s_x·s_w[o]
	epi          *epilogue       // BuildFused: bias, norm, residual, ReLU per output plane
	// scratch, sized on the first call
	codes []uint8 // the input's codes, NCHW
	img   []uint8 // padded channels-last codes, plus slack for the last rows
	patch []uint8 // im2row
	acc   []int32
	out   *tensor.Dense
}

func newConvInt8Op(name string, p convParams, w Int8Weight, act Int8Static) *convInt8Op {
	o := &convInt8Op{Base: op.NewBase(name), convParams: p, o: w.Shape[0], c: w.Shape[1], kh: w.Shape[2], kw: w.Shape[3]}
	// Signed codes (qmin < 0) shift to unsigned ones: q - zp = (q - qmin) - (zp - qmin).
	o.act = qgemm.Params{Scale: act.Scale, ZeroPoint: act.ZeroPoint - act.QMin}
	o.r = qgemm.Full
	if act.QMax-act.QMin <= int32(qgemm.Reduced) {
		o.r = qgemm.Reduced
	}
	kk := o.kh * o.kw
	// reorder writes w[o][c][ki][kj] at dst[o][index(ki, kj, c)].
	reorder := func(dst []int8, ki0, kis int) {
		n := len(dst) / o.o
		for oc := 0; oc < o.o; oc++ {
			for ci := 0; ci < o.c; ci++ {
				for ki := ki0; ki < ki0+kis; ki++ {
					for kj := 0; kj < o.kw; kj++ {
						dst[oc*n+((ki-ki0)*o.kw+kj)*o.c+ci] = w.Q[((oc*o.c+ci)*o.kh+ki)*o.kw+kj]
					}
				}
			}
		}
	}
	if p.stride == Square(1) {
		for ki := 0; ki < o.kh; ki++ {
			b := make([]int8, o.o*o.kw*o.c)
			reorder(b, ki, 1)
			o.rows = append(o.rows, qgemm.Pack(b, o.o, o.kw*o.c))
		}
	} else {
		b := make([]int8, o.o*kk*o.c)
		reorder(b, 0, o.kh)
		o.full = qgemm.Pack(b, o.o, kk*o.c)
	}
	o.rowSum = make([]int32, o.o)
	o.mult = make([]float32, o.o)
	for oc := range o.rowSum {
		var s int32
		for _, v := range w.Q[oc*o.c*kk : (oc+1)*o.c*kk] {
			s += int32(v)
		}
		o.rowSum[oc] = s
		o.mult[oc] = act.Scale * w.Scale[min(oc, len(w.Scale)-1)]
	}
	return o
}

func (o *convInt8Op) hasRes() bool { return o.epi != nil && o.epi.hasRes }

func (o *convInt8Op) Arity() int {
	if o.hasRes() {
		return 2
	}
	return 1
}

func (o *convInt8Op) Type() hmType {
	if o.hasRes() {
		return op.Fn(4, 4, 4)
	}
	return op.Fn(4, 4)
}

func (o *convInt8Op) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x := op.ShapeOf(in[0])
	if len(x) != 4 || x[1] != o.c {
		return nil, fmt.Errorf("conv: input %v does not fit filters [%d, %d, %d, %d]", x, o.o, o.c, o.kh, o.kw)
	}
	oh := outSize(x[2], o.kh, o.stride[0], o.padding[0], 1)
	ow := outSize(x[3], o.kw, o.stride[1], o.padding[1], 1)
	if oh < 1 || ow < 1 {
		return nil, fmt.Errorf("conv: input %v is smaller than filters [%d, %d, %d, %d]", x, o.o, o.c, o.kh, o.kw)
	}
	s := tensor.Shape{x[0], o.o, oh, ow}
	if o.hasRes() {
		if r := op.ShapeOf(in[1]); !r.Eq(s) {
			return nil, fmt.Errorf("conv: residual %v does not match the output %v", r, s)
		}
	}
	return s, nil
}

func (o *convInt8Op) Do(in ...G.Value) (G.Value, error) {
	s := op.Dims(in[0])
	nb, c, h, w := s[0], s[1], s[2], s[3]
	ph, pw := o.padding[0], o.padding[1]
	hp, wp := h+2*ph, w+2*pw
	oh := outSize(h, o.kh, o.stride[0], ph, 1)
	ow := outSize(w, o.kw, o.stride[1], pw, 1)
	x := op.F32(in[0])
	if o.epi != nil {
		var res []float32
		if o.hasRes() {
			res = op.F32(in[1])
		}
		o.epi.prepare(o.o, oh*ow, res)
		defer func() { o.epi.res = nil }()
	}

	// Codes, then the padded channels-last image. The slack after it lets
	// the stride-1 products read whole rows past the last pixel.
	codes := grow(&o.codes, len(x))
	qgemm.QuantizeWith(1, len(x), x, len(x), o.act, o.r, codes, len(x))
	slack := (o.kh-1)*wp*c + o.kw*c
	img := grow(&o.img, nb*hp*wp*c+slack)
	// The zero point everywhere (the padding), by doubling copies.
	img[0] = uint8(o.act.ZeroPoint)
	for n := 1; n < len(img); n *= 2 {
		copy(img[n:], img[:n])
	}
	for b := 0; b < nb; b++ {
		for ci := 0; ci < c; ci++ {
			plane := codes[(b*c+ci)*h*w : (b*c+ci+1)*h*w]
			base := ((b*hp+ph)*wp+pw)*c + ci
			for i := 0; i < h; i++ {
				dst := img[base+i*wp*c:]
				for j, v := range plane[i*w : (i+1)*w] {
					dst[j*c] = v
				}
			}
		}
	}

	y := op.Buffer(&o.out, nb, o.o, oh, ow)
	yd := op.F32(y)
	if o.rows != nil {
		// Every pixel of the padded grid is a window's top-left corner.
		m := nb * hp * wp
		acc := growInt32s(&o.acc, m*o.o)
		clear(acc)
		for ki, p := range o.rows {
			qgemm.MatMulAdd(m, img[ki*wp*c:], c, o.r, p, acc, o.o)
		}
		o.rescale(yd, acc, nb, oh, ow, hp*wp, wp)
		return y, nil
	}
	k := o.kh * o.kw * c
	m := nb * oh * ow
	patch := grow(&o.patch, m*k)
	sh, sw := o.stride[0], o.stride[1]
	for b := 0; b < nb; b++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				row := patch[((b*oh+i)*ow+j)*k:]
				for ki := 0; ki < o.kh; ki++ {
					src := img[((b*hp+i*sh+ki)*wp+j*sw)*c:]
					copy(row[ki*o.kw*c:(ki+1)*o.kw*c], src[:o.kw*c])
				}
			}
		}
	}
	acc := growInt32s(&o.acc, m*o.o)
	qgemm.MatMul(m, patch, k, o.r, o.full, acc, o.o)
	o.rescale(yd, acc, nb, oh, ow, oh*ow, ow)
	return y, nil
}

// rescale writes y [B, O, OH, OW] from the sums acc, whose row for output
// pixel (b, i, j) is b·perImage + i·perRow + j.
func (o *convInt8Op) rescale(y []float32, acc []int32, nb, oh, ow, perImage, perRow int) {
	zp := o.act.ZeroPoint
	for b := 0; b < nb; b++ {
		for oc := 0; oc < o.o; oc++ {
			zc, mult := zp*o.rowSum[oc], o.mult[oc]
			plane := y[(b*o.o+oc)*oh*ow:]
			for i := 0; i < oh; i++ {
				a := acc[(b*perImage+i*perRow)*o.o+oc:]
				dst := plane[i*ow : (i+1)*ow]
				for j := range dst {
					dst[j] = float32(float32(a[j*o.o]-zc) * mult)
				}
			}
			if o.epi != nil {
				o.epi.channel(plane[:oh*ow], oc, (b*o.o+oc)*oh*ow)
			}
		}
	}
}

func (o *convInt8Op) DiffWRT(n int) []bool { return make([]bool, n) }
func (o *convInt8Op) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%s: integer inference has no gradient", o.Name())
}

func grow(buf *[]uint8, n int) []uint8 {
	if cap(*buf) < n {
		*buf = make([]uint8, n)
	}
	return (*buf)[:n]
}

func growInt32s(buf *[]int32, n int) []int32 {
	if cap(*buf) < n {
		*buf = make([]int32, n)
	}
	return (*buf)[:n]
}
