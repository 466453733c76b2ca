package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/gemm"
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
	full         *qgemm.Packed   // [O, KH·KW·C] in (ki, kj, c) order: other strides' product, every stride's row sums
	wScale       []float32       // s_w, per tensor or per output channel
	bias         []float32       // BuildFused: the bias, added by the rescale; nil: none (or added after)
	epi          *epilogue       // BuildFused: norm, residual, ReLU per output plane
	inCL, outCL  bool            // BuildFused: x, y laid out [B, H, W, C] (Fusion)
	// scratch for one chunk of images, sized on the first call
	geo   [4]int    // the chunk's images, C, H, W the scratch is laid out for
	xt    []float32 // one image channels-last
	img   []uint8   // padded channels-last codes of a chunk, plus slack for the last rows
	patch []uint8   // im2row
	acc   []int32
	ycl   []float32 // one image's rescaled outputs, channels-last
	deq   *qgemm.Epilogue
	out   *tensor.Dense
	// the taps route (conv2d_int8_taps.go); taps nil: the route above
	taps      *qgemm.TapFilter
	tp        tapsScratch
	codesIn   *Int8Codes // BuildFused: the input as codes; nil: x
	codesOut  *Int8Codes // BuildFused: the reader's codes of y, written too
	codesOnly bool       // BuildFused: y itself is not written
}

func newConvInt8Op(name string, p convParams, w Int8Weight, act Int8Static) *convInt8Op {
	o := &convInt8Op{Base: op.NewBase(name), convParams: p, o: w.Shape[0], c: w.Shape[1], kh: w.Shape[2], kw: w.Shape[3]}
	o.act, o.r = staticParams(act)
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
	}
	if int8Taps() {
		// Any stride: the taps route splits the input into phases.
		o.taps = qgemm.PackTaps(w.Q, o.o, o.c, kk)
	}
	b := make([]int8, o.o*kk*o.c)
	reorder(b, 0, o.kh)
	o.full = qgemm.Pack(b, o.o, kk*o.c)
	o.wScale = w.Scale
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

// int8Budget bounds a chunk's int32 sums (values): 256 KiB, so a chunk's
// codes, sums and outputs stay in L2 from one step to the next.
const int8Budget = 1 << 16

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
	y := op.Buffer(&o.out, nb, o.o, oh, ow)
	yd := op.F32(y)
	if o.taps != nil && !o.inCL && !o.outCL && (o.epi == nil || !o.epi.resCL) {
		if err := o.runTaps(x, yd, nb, c, h, w); err != nil {
			return nil, err
		}
		return y, nil
	}
	chunk := max(1, min(nb, int8Budget/(hp*wp*max(o.o, c))))
	if o.geo != [4]int{chunk, c, h, w} {
		// The zero point everywhere: the padding keeps it, the pixels are
		// rewritten for every chunk. The slack after the last image lets
		// the stride-1 products read whole rows past its last pixel.
		o.geo = [4]int{chunk, c, h, w}
		slack := (o.kh-1)*wp*c + o.kw*c
		o.img = make([]uint8, chunk*hp*wp*c+slack)
		o.img[0] = uint8(o.act.ZeroPoint)
		for n := 1; n < len(o.img); n *= 2 {
			copy(o.img[n:], o.img[:n])
		}
	}
	for b0 := 0; b0 < nb; b0 += chunk {
		o.chunk(x, yd, b0, min(chunk, nb-b0), c, h, w, oh, ow)
	}
	return y, nil
}

// chunk computes images [b0, b0+nb): their codes laid out channels-last
// (each image transposed, then quantized row by row into the padded
// layout), the integer products, and the rescaled sums transposed back to
// [O, OH·OW] planes, where the epilogue runs.
func (o *convInt8Op) chunk(x, y []float32, b0, nb, c, h, w, oh, ow int) {
	ph, pw := o.padding[0], o.padding[1]
	hp, wp := h+2*ph, w+2*pw
	plane, oplane := h*w, oh*ow
	xt := grow(&o.xt, plane*c)
	img := o.img
	for b := 0; b < nb; b++ {
		xb := x[(b0+b)*c*plane:]
		if !o.inCL {
			gemm.Transpose(c, plane, xb, plane, xt, c)
			xb = xt
		}
		qgemm.QuantizeWith(h, w*c, xb, w*c, o.act, o.r, img[((b*hp+ph)*wp+pw)*c:], wp*c)
	}
	var acc []int32
	perImage, perRow := oplane, ow
	if o.rows != nil {
		// A pixel of the padded grid is a window's top-left corner; an
		// image's windows run from its first row to its last output
		// pixel, the rows of the bottom padding are skipped (a fifth of
		// the grid at 7x7).
		perImage, perRow = hp*wp, wp
		m := (oh-1)*perRow + ow
		acc = grow(&o.acc, nb*perImage*o.o)
		for b := 0; b < nb; b++ {
			ab := acc[b*perImage*o.o : (b*perImage+m)*o.o]
			clear(ab)
			for ki, p := range o.rows {
				qgemm.MatMulAdd(m, img[(b*perImage+ki*wp)*c:], c, o.r, p, ab, o.o)
			}
		}
	} else {
		k := o.kh * o.kw * c
		m := nb * oplane
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
		acc = grow(&o.acc, m*o.o)
		qgemm.MatMul(m, patch, k, o.r, o.full, acc, o.o)
	}
	// Output row i of an image is perRow·i rows into its sums; the rows
	// between (windows leaving the image) are rescaled and dropped.
	if o.deq == nil {
		// The rescale's constants, once (the bias is set after newConvInt8Op).
		o.deq = qgemm.NewEpilogue(o.act, o.full, o.wScale, o.bias)
	}
	// A ReLU alone runs in the rescale's pass (qgemm's ReLU: Go's max bits).
	relu := o.epi != nil && o.epi.relu && o.epi.norm == nil && !o.epi.hasRes
	epi := o.epi
	if relu {
		epi = nil
	}
	if o.outCL {
		// Output row i of image b straight into y [B, OH·OW, O].
		for b := 0; b < nb; b++ {
			img := y[(b0+b)*oplane*o.o : (b0+b+1)*oplane*o.o]
			if perRow == ow {
				o.deq.Dequantize(oplane, acc[b*perImage*o.o:], o.o, img, o.o, relu)
			} else {
				for i := 0; i < oh; i++ {
					o.deq.Dequantize(ow, acc[(b*perImage+i*perRow)*o.o:], o.o, img[i*ow*o.o:], o.o, relu)
				}
			}
			if epi != nil {
				epi.pixels(img, b0+b)
			}
		}
		return
	}
	rows := (oh-1)*perRow + ow
	ycl := grow(&o.ycl, rows*o.o)
	for b := 0; b < nb; b++ {
		o.deq.Dequantize(rows, acc[b*perImage*o.o:], o.o, ycl, o.o, relu)
		dst := y[(b0+b)*o.o*oplane:]
		if perRow == ow {
			gemm.Transpose(oplane, o.o, ycl, o.o, dst, oplane)
		} else {
			for i := 0; i < oh; i++ {
				gemm.Transpose(ow, o.o, ycl[i*perRow*o.o:], o.o, dst[i*ow:], oplane)
			}
		}
		if epi != nil {
			for oc := 0; oc < o.o; oc++ {
				at := ((b0+b)*o.o + oc) * oplane
				epi.channel(y[at:at+oplane], oc, at)
			}
		}
	}
}

func (o *convInt8Op) DiffWRT(n int) []bool { return make([]bool, n) }
func (o *convInt8Op) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%s: integer inference has no gradient", o.Name())
}

// grow returns (*buf)[:n], reallocating *buf when it is too short, so
// that the ops' scratch is allocated once per shape.
func grow[T any](buf *[]T, n int) []T {
	if cap(*buf) < n {
		*buf = make([]T, n)
	}
	return (*buf)[:n]
}
