package nn

import (
	"github.com/shrink-ml/shrink/internal/qgemm"
)

// The taps route of a stride-1 int8 convolution (qgemm.ConvTaps): the sums
// vectorized over output positions instead of output channels, for the few
// channels of a pruned network's layers, which fill a fraction of a
// 16-lane column tile (11 channels: 69%) while an image's positions fill
// 32-position blocks almost whole (28×28 on its padded 30-wide grid: 838
// positions in 27 blocks). Each image is quantized into the padded layout
// [C/4][positions][4] straight from [C, H, W] planes (no transpose), its
// sums come out as [O][positions] planes, and each output channel's valid
// rows are rescaled into the [O, OH, OW] output, where the epilogue runs on
// planes. The integers are the column route's, the rescale the same
// operations with the same constants: the same bits.

// int8Taps reports whether stride-1 integer convolutions take the taps
// route: where qgemm has vector kernels for it (AVX-512 VNNI). Tests
// switch it to compare both routes.
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

// tapsScratch is the taps route's per-op state, sized on the first call.
type tapsScratch struct {
	geo [3]int          // the C, H, W it is laid out for
	img []uint8         // one padded image, [C/4][gs][4], the padding holding the zero point
	gs  int             // positions per group
	off []int           // the taps' offsets in positions
	acc []int32         // [O][ldc] sums
	deq *qgemm.Epilogue // the rescale's constants
}

// runTaps computes the convolution of the nb images of x into y, image by
// image (its codes, sums and outputs stay in L2).
func (o *convInt8Op) runTaps(x, y []float32, nb, c, h, w, oh, ow int) {
	ph, pw := o.padding[0], o.padding[1]
	hp, wp := h+2*ph, w+2*pw
	plane, oplane := h*w, oh*ow
	// Output pixel (i, j) is position i·wp + j of the padded grid, the
	// window's top-left corner; the positions between rows (windows
	// leaving the image) are computed and dropped.
	m := (oh-1)*wp + ow
	ldc := (m + qgemm.TapBlock - 1) / qgemm.TapBlock * qgemm.TapBlock
	t := &o.tp
	cg := o.taps.Groups()
	if t.geo != [3]int{c, h, w} {
		t.geo = [3]int{c, h, w}
		// Room for the last block's reads past the last output position.
		t.gs = max(hp*wp, ldc+(o.kh-1)*wp+o.kw-1)
		t.img = make([]uint8, cg*t.gs*4)
		t.img[0] = uint8(o.act.ZeroPoint)
		for n := 1; n < len(t.img); n *= 2 {
			copy(t.img[n:], t.img[:n])
		}
		t.off = t.off[:0]
		for ki := 0; ki < o.kh; ki++ {
			for kj := 0; kj < o.kw; kj++ {
				t.off = append(t.off, ki*wp+kj)
			}
		}
		t.acc = make([]int32, o.o*ldc)
	}
	if t.deq == nil {
		t.deq = qgemm.NewTapsEpilogue(o.act, o.taps, o.wScale, o.bias)
	}
	// A ReLU alone runs in the rescale's pass, as on the column route.
	relu := o.epi != nil && o.epi.relu && o.epi.norm == nil && !o.epi.hasRes
	epi := o.epi
	if relu {
		epi = nil
	}
	for b := 0; b < nb; b++ {
		xb := x[b*c*plane : (b+1)*c*plane]
		for g := 0; g < cg; g++ {
			// A group's missing channels read channel 4g again: their
			// weights are zero.
			var ch [4][]float32
			for k := range ch {
				ci := 4*g + k
				if ci >= c {
					ci = 4 * g
				}
				ch[k] = xb[ci*plane : (ci+1)*plane]
			}
			for i := 0; i < h; i++ {
				r := i * w
				qgemm.QuantizeGroup(w, ch[0][r:], ch[1][r:], ch[2][r:], ch[3][r:], o.act, o.r, t.img[(g*t.gs+(i+ph)*wp+pw)*4:])
			}
		}
		qgemm.ConvTaps(m, t.img, t.gs, t.off, o.taps, t.acc, ldc)
		for j := 0; j < o.o; j++ {
			at := (b*o.o + j) * oplane
			t.deq.DequantizePlane(j, oh, ow, t.acc[j*ldc:], wp, y[at:at+oplane], ow, relu)
			if epi != nil {
				epi.channel(y[at:at+oplane], j, at)
			}
		}
	}
}
