package nn

import (
	"fmt"
	"unsafe"

	"github.com/shrink-ml/shrink/internal/qgemm"
)

// The taps route of a stride-1 int8 convolution (qgemm.ConvTaps): the sums
// vectorized over output positions instead of output channels, for the few
// channels of a pruned network's layers, which fill a fraction of a
// 16-lane column tile (11 channels: 69%) while an image's positions fill
// 32-position blocks almost whole (28×28 on its padded 30-wide grid: 838
// positions in 27 blocks). Each image is quantized into the padded layout
// [C/4][positions][4] straight from [C, H, W] planes (no transpose), its
// sums come out as [O][positions] planes, and one pass per output channel
// (qgemm.Epilogue.Output) rescales the valid rows into the [O, OH, OW]
// output with the epilogue applied. The integers are the column route's,
// the rescale and epilogue the same operations with the same constants:
// the same bits.
//
// Between two convolutions on this route the tensor can pass as codes
// (Int8Codes): the writer's output pass computes the reader's codes of its
// values, as the reader would, straight into the reader's padded layout,
// and writes the floats only if something else reads them (a residual
// add), so the reader neither reads floats nor quantizes.

// int8Taps reports whether stride-1 integer convolutions take the taps
// route: where qgemm has vector kernels for it (AVX-512 VNNI).
var int8Taps = qgemm.TapsFast

// UseInt8Taps makes the integer convolutions built from now on take the
// taps route (on, on qgemm's Go kernels where the CPU has no VNNI) or the
// column route, and returns the function that restores the default. For
// tests and benchmarks comparing the two; not safe while others build.
func UseInt8Taps(on bool) (restore func()) {
	prev := int8Taps
	int8Taps = func() bool { return on }
	return func() { int8Taps = prev }
}

// UseInt8TapsDefault reports whether integer convolutions take the taps
// route by default on this machine (qgemm.TapsFast).
func UseInt8TapsDefault() bool { return qgemm.TapsFast() }

// Int8ConvChannelsLast reports whether integer convolutions exchange
// channels-last tensors (Fusion.*ChannelsLast): the column route lays its
// input out that way anyway, the taps route reads and writes planes.
func Int8ConvChannelsLast() bool { return !int8Taps() }

// RunsInt8Taps: the convolution, statically quantized, runs on the taps
// route, so it can write its reader's Int8Codes.
func (c *Conv2d) RunsInt8Taps() bool { return c.RunsStaticInt8() && int8Taps() }

// ReadsInt8Codes: the convolution, statically quantized, runs on the taps
// route with stride 1, so it can read its input as Int8Codes (which its
// writer lays out by rows, not phases).
func (c *Conv2d) ReadsInt8Codes() bool {
	return c.RunsStaticInt8() && c.Stride == Square(1) && int8Taps()
}

// staticParams are the codes' parameters of a statically quantized input:
// signed codes (qmin < 0) shifted to unsigned ones, q - zp = (q - qmin) -
// (zp - qmin), and the range they span.
func staticParams(st Int8Static) (qgemm.Params, qgemm.Range) {
	r := qgemm.Full
	if st.QMax-st.QMin <= int32(qgemm.Reduced) {
		r = qgemm.Reduced
	}
	return qgemm.Params{Scale: st.Scale, ZeroPoint: st.ZeroPoint - st.QMin}, r
}

// tapsGeo is the taps route's layout of a C×H×W input: C/4 groups of gs
// positions. With stride s the padded image hp×wp is split into s×s
// phases (row r, column q of the padded image in phase (r mod s, q mod s)
// at (r/s, q/s), each phase hps×wps, ps positions apart), so that every tap
// reads one phase at a fixed shift and output pixel (i, j) is position
// i·wps + j; stride 1 is one phase, the padded image itself. The m output
// positions (those between rows are windows leaving the image, computed
// and dropped) come out in planes ldc apart.
type tapsGeo struct {
	c, h, w, ph, pw, sh, sw int
	cg, wp, wps, ps, gs     int
	oh, ow, m, ldc          int
}

func newTapsGeo(c, h, w, kh, kw, ph, pw, sh, sw int) tapsGeo {
	g := tapsGeo{c: c, h: h, w: w, ph: ph, pw: pw, sh: sh, sw: sw, cg: (c + 3) / 4, wp: w + 2*pw}
	hp := h + 2*ph
	g.wps = (g.wp + sw - 1) / sw
	g.oh, g.ow = (hp-kh)/sh+1, (g.wp-kw)/sw+1
	g.m = (g.oh-1)*g.wps + g.ow
	g.ldc = (g.m + qgemm.TapBlock - 1) / qgemm.TapBlock * qgemm.TapBlock
	// Room for the last block's reads past the last output position.
	g.ps = max((hp+sh-1)/sh*g.wps, g.ldc+(kh-1)/sh*g.wps+(kw-1)/sw)
	g.gs = sh * sw * g.ps
	return g
}

// offsets are the taps' shifts, in positions, for a kh×kw kernel.
func (g *tapsGeo) offsets(off []int, kh, kw int) []int {
	off = off[:0]
	for ki := 0; ki < kh; ki++ {
		for kj := 0; kj < kw; kj++ {
			off = append(off, ((ki%g.sh)*g.sw+kj%g.sw)*g.ps+(ki/g.sh)*g.wps+kj/g.sw)
		}
	}
	return off
}

// bytes is one image's codes.
func (g *tapsGeo) bytes() int { return g.cg * g.gs * 4 }

// zeroPointFill returns n bytes of zp: the padding, and channels past C.
func zeroPointFill(n int, zp int32) []uint8 {
	b := make([]uint8, n)
	b[0] = uint8(zp)
	for k := 1; k < n; k *= 2 {
		copy(b[k:], b[:k])
	}
	return b
}

// Int8Codes is a tensor passed between two integer convolutions on the
// taps route as its reader's codes, laid out for the reader [B][C/4][gs][4]
// with the padding holding its zero point (Fusion.OutputCodes,
// Fusion.InputCodes). The writer fills it on every call, the reader reads
// it after; the tensor's own float values are written only without
// Fusion.CodesOnly.
type Int8Codes struct {
	act            qgemm.Params
	r              qgemm.Range
	kh, kw, ph, pw int
	nb             int
	geo            tapsGeo
	buf            []uint8
}

// Int8Codes returns the codes of c's input, for c statically quantized
// with st and on the taps route (else an error).
func (c *Conv2d) Int8Codes(st Int8Static) (*Int8Codes, error) {
	if !c.ReadsInt8Codes() {
		return nil, fmt.Errorf("conv: only stride-1 integer convolutions on the taps route read codes")
	}
	act, r := staticParams(st)
	return &Int8Codes{act: act, r: r, kh: c.Kernel[0], kw: c.Kernel[1], ph: c.Padding[0], pw: c.Padding[1]}, nil
}

// layout readies the buffer for nb images of c×h×w (the writer's call).
func (k *Int8Codes) layout(nb, c, h, w int) {
	g := newTapsGeo(c, h, w, k.kh, k.kw, k.ph, k.pw, 1, 1)
	if k.nb == nb && k.geo == g {
		return
	}
	k.nb, k.geo = nb, g
	k.buf = zeroPointFill(nb*g.bytes(), k.act.ZeroPoint)
}

// tapsScratch is the taps route's per-op state, sized on the first call.
type tapsScratch struct {
	geo tapsGeo
	img []uint8         // one padded image's codes (without input codes)
	row []uint8         // stride > 1: one row's codes before they go to their phases
	off []int           // the taps' offsets in positions
	acc []int32         // [O][ldc] sums
	deq *qgemm.Epilogue // the rescale's constants
	po  qgemm.PlaneOutput
}

// runTaps computes the convolution of the nb images of x into y, image by
// image (its codes, sums and outputs stay in L2).
func (o *convInt8Op) runTaps(x, y []float32, nb, c, h, w int) error {
	t := &o.tp
	g := newTapsGeo(c, h, w, o.kh, o.kw, o.padding[0], o.padding[1], o.stride[0], o.stride[1])
	if t.geo != g {
		t.geo = g
		t.img = nil
		if o.codesIn == nil {
			t.img = zeroPointFill(g.bytes(), o.act.ZeroPoint)
		}
		t.off = g.offsets(t.off, o.kh, o.kw)
		t.acc = make([]int32, o.o*g.ldc)
		t.row = make([]uint8, 4*w)
	}
	if in := o.codesIn; in != nil && (in.nb != nb || in.geo != g) {
		return fmt.Errorf("%s: the input's codes are laid out for %d images of %dx%dx%d, not %d of %dx%dx%d", o.Name(), in.nb, in.geo.c, in.geo.h, in.geo.w, nb, c, h, w)
	}
	if t.deq == nil {
		t.deq = qgemm.NewTapsEpilogue(o.act, o.taps, o.wScale, o.bias)
	}
	plane, oplane := h*w, g.oh*g.ow
	out := o.codesOut
	if out != nil {
		out.layout(nb, o.o, g.oh, g.ow)
	}
	po := &t.po
	for b := 0; b < nb; b++ {
		img := t.img
		if o.codesIn != nil {
			img = o.codesIn.buf[b*g.bytes() : (b+1)*g.bytes()]
		} else {
			o.quantizeTaps(x[b*c*plane:(b+1)*c*plane], img, &g)
		}
		qgemm.ConvTaps(g.m, img, g.gs, t.off, o.taps, t.acc, g.ldc)
		*po = qgemm.PlaneOutput{LdY: g.ow, PlaneY: oplane}
		at := b * o.o * oplane
		if !o.codesOnly {
			po.Y = y[at : at+o.o*oplane]
		}
		if e := o.epi; e != nil {
			if e.norm != nil {
				po.Scale, po.Shift = e.norm.a, e.norm.b
			}
			if e.res != nil {
				po.Res = e.res[at : at+o.o*oplane]
			}
			po.ReLU = e.relu
		}
		if out != nil {
			og := &out.geo
			po.Codes = out.buf[b*og.bytes()+(og.ph*og.wp+og.pw)*4 : (b+1)*og.bytes()]
			po.LdCodes, po.GroupCodes, po.CodeParams, po.CodeRange = og.wp*4, og.gs*4, out.act, out.r
		}
		t.deq.Output(g.oh, g.ow, t.acc, g.wps, g.ldc, po)
	}
	return nil
}

// quantizeTaps writes one image's codes (xb [C, H, W]) into the padded
// layout img, 4 channels at a time: each row straight into place at stride
// 1, else into t.row and from there, 4 bytes a pixel, into its phases.
func (o *convInt8Op) quantizeTaps(xb []float32, img []uint8, g *tapsGeo) {
	plane := g.h * g.w
	for k := 0; k < g.cg; k++ {
		// A group's missing channels read channel 4k again: their weights
		// are zero.
		var ch [4][]float32
		for l := range ch {
			ci := 4*k + l
			if ci >= g.c {
				ci = 4 * k
			}
			ch[l] = xb[ci*plane : (ci+1)*plane]
		}
		group := img[k*g.gs*4 : (k+1)*g.gs*4]
		for i := 0; i < g.h; i++ {
			x := i * g.w
			r := i + g.ph
			if g.sh == 1 && g.sw == 1 {
				qgemm.QuantizeGroup(g.w, ch[0][x:], ch[1][x:], ch[2][x:], ch[3][x:], o.act, o.r, group[(r*g.wp+g.pw)*4:])
				continue
			}
			if r%g.sh >= o.kh {
				continue // a phase no tap reads (a 1×1 kernel's odd rows)
			}
			row := o.tp.row
			qgemm.QuantizeGroup(g.w, ch[0][x:], ch[1][x:], ch[2][x:], ch[3][x:], o.act, o.r, row)
			// A pixel's 4 codes as one uint32: padded column q goes to
			// phase column q mod sw, position q/sw.
			src := unsafe.Slice((*uint32)(unsafe.Pointer(&row[0])), g.w)
			dst := unsafe.Slice((*uint32)(unsafe.Pointer(&group[0])), g.gs)
			for pc := 0; pc < min(g.sw, o.kw); pc++ {
				q0 := g.pw + (pc-g.pw%g.sw+g.sw)%g.sw // the first column of phase pc
				at := ((r%g.sh)*g.sw+pc)*g.ps + (r/g.sh)*g.wps + q0/g.sw
				for q := q0; q < g.pw+g.w; q += g.sw {
					dst[at] = src[q-g.pw]
					at++
				}
			}
		}
	}
}
