package planar

import (
	"fmt"

	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/vec"
)

//go:generate go run asm/gen.go -out kernel_amd64.s -stubs kernel_stubs_amd64.go -pkg planar

// Shape is a convolution this package computes: C input and O output
// channels, images of H×W, an odd KH×KW kernel with padding (KH-1)/2 and
// (KW-1)/2, dilation 1, and the same Stride (0 means 1) both ways: the
// output is ⌈H/Stride⌉×⌈W/Stride⌉.
type Shape struct{ C, H, W, O, KH, KW, Stride int }

func (s Shape) stride() int { return max(1, s.Stride) }

// OH and OW are the output's height and width.
func (s Shape) OH() int { return (s.H + s.stride() - 1) / s.stride() }
func (s Shape) OW() int { return (s.W + s.stride() - 1) / s.stride() }

func (s Shape) check() error {
	if s.C < 1 || s.H < 1 || s.W < 1 || s.O < 1 || s.KH < 1 || s.KW < 1 || s.Stride < 0 {
		return fmt.Errorf("planar: shape %+v: every size must be at least 1", s)
	}
	if s.KH%2 == 0 || s.KW%2 == 0 {
		return fmt.Errorf("planar: shape %+v: the kernel must be odd (padding (k-1)/2)", s)
	}
	return nil
}

// Order is the order of an output's FMA chain, whose bits this package
// repeats.
type Order int

const (
	// TapsFirst is gemm.Taps' order (nn's tall layout, stride-1 "same"
	// convolutions): tap by tap, within a tap the input channels, the taps
	// cut into blocks of gemm.TapsPerBlock.
	TapsFirst Order = iota
	// ChannelsFirst is an im2col product's (gemm.SgemmSerial of the filters
	// [O, C·KH·KW] by the patches, nn's other convolutions): channel by
	// channel, within a channel the taps, the C·KH·KW steps cut into blocks
	// of gemm.KBlock.
	ChannelsFirst
)

// Conv is a convolution with its filters laid out for the kernels, made
// once (inference: the filters do not change).
type Conv struct {
	s      Shape
	order  Order
	kk     int   // taps, KH·KW
	phase  []int // per tap: the phase plane it reads (stride > 1)
	dy, dx []int // per tap: the shift within its phase plane, in output rows and columns
	ih, iw []int // per tap: the input row and column of output (0, 0)
	// The chain: groups of k steps (a tap's C channels, or a channel's
	// tap), cut into blocks (first group of each, and the end).
	groups int
	k      int
	blocks []int
	tiles  []tile
	w      []float32 // per tile: [steps][r], steps in the chain's order
	im     *impl
	phases int    // stride²
	used   []bool // per phase plane: whether a tap reads it (a 1x1 kernel reads one of four)
}

// tile is r output channels from o0, computed by one kernel.
type tile struct{ o0, r, w int }

// New lays out w [O, C, KH, KW] for the kernels in use, for a chain in
// order. It panics on a shape it does not compute or a short w.
func New(s Shape, w []float32, order Order) *Conv {
	if err := s.check(); err != nil {
		panic(err)
	}
	if len(w) < s.O*s.C*s.KH*s.KW {
		panic(fmt.Sprintf("planar: New: %d filter values for shape %+v, want %d", len(w), s, s.O*s.C*s.KH*s.KW))
	}
	im := active.Load()
	st := s.stride()
	c := &Conv{s: s, order: order, kk: s.KH * s.KW, im: im, phases: st * st}
	ph, pw := (s.KH-1)/2, (s.KW-1)/2
	for ki := 0; ki < s.KH; ki++ {
		for kj := 0; kj < s.KW; kj++ {
			// Input row st·oh + ki - ph is row oh + dy of phase plane a.
			a, b := mod(ki-ph, st), mod(kj-pw, st)
			c.phase = append(c.phase, a*st+b)
			if c.used == nil {
				c.used = make([]bool, st*st)
			}
			c.used[a*st+b] = true
			c.dy, c.dx = append(c.dy, (ki-ph-a)/st), append(c.dx, (kj-pw-b)/st)
			c.ih, c.iw = append(c.ih, ki-ph), append(c.iw, kj-pw)
		}
	}
	steps := c.kk * s.C
	switch order {
	case TapsFirst:
		c.groups, c.k = c.kk, s.C
		per := gemm.TapsPerBlock(c.kk, s.C)
		for t := 0; t < c.kk; t += per {
			c.blocks = append(c.blocks, t)
		}
	default:
		c.groups, c.k = steps, 1
		kc := gemm.KBlock(steps)
		for p := 0; p < steps; p += kc {
			c.blocks = append(c.blocks, p)
		}
	}
	c.blocks = append(c.blocks, c.groups)
	// As few tiles as the widest kernel allows, of equal widths (±1): 45
	// channels as 15+15+15 with 15-wide kernels, 23 as 12+11, not 15+8,
	// whose narrow tile has too few accumulator chains to hide the FMA
	// latency.
	nt := (s.O + im.rmax - 1) / im.rmax
	for i, o0 := 0, 0; i < nt; i++ {
		r := s.O / nt
		if i < s.O%nt {
			r++
		}
		c.tiles = append(c.tiles, tile{o0: o0, r: r, w: len(c.w)})
		c.w = append(c.w, make([]float32, steps*r)...)
		dst := c.w[len(c.w)-steps*r:]
		for g := 0; g < c.groups; g++ {
			for j := 0; j < c.k; j++ {
				t, ic := c.step(g, j)
				for i := 0; i < r; i++ {
					dst[(g*c.k+j)*r+i] = w[((o0+i)*s.C+ic)*c.kk+t]
				}
			}
		}
		o0 += r
	}
	return c
}

func mod(a, m int) int { return ((a % m) + m) % m }

// step is the tap and input channel of step j of group g.
func (c *Conv) step(g, j int) (t, ic int) {
	if c.order == TapsFirst {
		return g, j
	}
	return g % c.kk, g / c.kk
}

// Shape is the convolution's shape.
func (c *Conv) Shape() Shape { return c.s }

// Scratch is one goroutine's buffers for Forward, kept between calls: a
// layout per chunk size (a batch's last chunk may be shorter).
type Scratch struct {
	layouts []*layout
	k       call
}

// layout is the buffers of a pass over nb images.
type layout struct {
	s                Shape
	order            Order
	nb, n, nvec      int      // images, output positions and vectors of a pass
	ldx, ldy, margin int      // copy passes: the copies' strides, the input's margin
	masks            []uint16 // per tap, per vector: the lanes that read the image
	smasks           []uint16 // per vector: the lanes that are positions
	offs, moffs      []int    // per group: its input offset and its masks' offset
	x, y             []float32
}

// direct reports whether Forward computes image by image from x into y
// as they are; else it copies chunks of images into a layout of positions
// running over the images (its input with margins, split into phase
// planes when the stride is above 1), and the output back. Image by image
// wastes the lanes of each image's last vector and computes it in a
// single-vector tile: 7x7 images fill 4 vectors to 77%, 14x14 ones 13 to
// 94%; 28x28 ones fill 49 exactly. ResNet-20 measured 2-5% faster with
// 14x14 images copied than in place, and alike either way at 28x28.
func (c *Conv) direct() bool { return c.phases == 1 && c.s.H*c.s.W >= directMin }

// directMin is the smallest image (in positions) computed in place.
var directMin = 256

// layout returns the buffers for nb images, made on the first call with
// this convolution and chunk size.
func (sc *Scratch) layout(c *Conv, nb int) *layout {
	if c.direct() {
		nb = 1
	}
	for _, l := range sc.layouts {
		if l.nb == nb && l.s == c.s && l.order == c.order {
			return l
		}
	}
	if len(sc.layouts) >= 4 { // another convolution's: start over
		sc.layouts = sc.layouts[:0]
	}
	l := &layout{}
	l.prepare(c, nb)
	sc.layouts = append(sc.layouts, l)
	return l
}

// prepare makes the masks, offsets and buffers of a pass over nb images.
func (l *layout) prepare(c *Conv, nb int) {
	s := c.s
	oh, ow := s.OH(), s.OW()
	p := oh * ow
	l.nb, l.s, l.order, l.n = nb, s, c.order, nb*p
	l.nvec = (l.n + 15) / 16
	l.masks = make([]uint16, c.kk*l.nvec)
	st := s.stride()
	for t := range c.kk {
		for q := 0; q < l.n; q++ {
			pi := q % p
			ih, iw := pi/ow*st+c.ih[t], pi%ow*st+c.iw[t]
			if ih >= 0 && ih < s.H && iw >= 0 && iw < s.W {
				l.masks[t*l.nvec+q/16] |= 1 << (q % 16)
			}
		}
	}
	l.smasks = make([]uint16, l.nvec)
	for q := 0; q < l.n; q++ {
		l.smasks[q/16] |= 1 << (q % 16)
	}
	// Offsets: the phase plane, the shift and, channels first, the channel.
	ldx := p
	if c.direct() {
		l.x, l.y = nil, nil
	} else {
		maxOff := 0
		for t := range c.kk {
			maxOff = max(maxOff, abs(c.dy[t]*ow+c.dx[t]))
		}
		l.margin = (maxOff + 15) / 16 * 16
		l.ldx = l.margin + l.nvec*16 + l.margin
		l.ldy = l.nvec * 16
		l.x = make([]float32, c.phases*s.C*l.ldx)
		l.y = make([]float32, s.O*l.ldy)
		ldx = l.ldx
	}
	l.offs, l.moffs = l.offs[:0], l.moffs[:0]
	for g := 0; g < c.groups; g++ {
		t, ic := c.step(g, 0)
		l.offs = append(l.offs, (c.phase[t]*s.C+ic)*ldx+c.dy[t]*ow+c.dx[t])
		l.moffs = append(l.moffs, t*l.nvec)
	}
}

func abs(a int) int { return max(a, -a) }

// Forward computes y [nb, O, OH, OW] from x [nb, C, H, W] (nb consecutive
// images) on the calling goroutine, with sc's buffers.
func (c *Conv) Forward(x []float32, nb int, y []float32, sc *Scratch) {
	s := c.s
	p, op := s.H*s.W, s.OH()*s.OW()
	if nb < 1 || len(x) < nb*s.C*p || len(y) < nb*s.O*op {
		panic(fmt.Sprintf("planar: Forward of %d images of %+v: x has %d values, y %d", nb, s, len(x), len(y)))
	}
	l := sc.layout(c, nb)
	if c.direct() {
		for b := range nb {
			c.pass(l, &sc.k, x, b*s.C*p, p, y, b*s.O*op, op)
		}
		return
	}
	st := s.stride()
	for b := range nb {
		for ic := range s.C {
			img := x[(b*s.C+ic)*p : (b*s.C+ic+1)*p]
			if st == 1 {
				at := ic*l.ldx + l.margin + b*p
				copy(l.x[at:at+p], img)
				continue
			}
			// Phase plane (ra, cb) holds rows ra, ra+st, … and columns cb, cb+st, …
			// on the output's grid (a short plane's last row or column stays 0).
			ow := s.OW()
			for ra := 0; ra < st; ra++ {
				for cb := 0; cb < st; cb++ {
					rows, cols := (s.H-ra+st-1)/st, (s.W-cb+st-1)/st
					if !c.used[ra*st+cb] || rows == 0 || cols == 0 {
						continue
					}
					base := ((ra*st+cb)*s.C+ic)*l.ldx + l.margin + b*op
					if st == 2 {
						vec.Gather2(l.x[base:], ow, img[ra*s.W+cb:], 2*s.W, rows, cols)
						continue
					}
					for i := 0; i < rows; i++ {
						row, dst := img[(i*st+ra)*s.W:], l.x[base+i*ow:base+i*ow+cols]
						for j := range dst {
							dst[j] = row[j*st+cb]
						}
					}
				}
			}
		}
	}
	c.pass(l, &sc.k, l.x, l.margin, l.ldx, l.y, 0, l.ldy)
	for b := range nb {
		for o := range s.O {
			at := o*l.ldy + b*op
			copy(y[(b*s.O+o)*op:(b*s.O+o+1)*op], l.y[at:at+op])
		}
	}
}

// pass computes l.n positions from x[xi:] (channels ldx apart) into
// y[yi:] (ldy apart): tiles of the widest kernel's vectors, then single
// vectors for the rest.
func (c *Conv) pass(l *layout, k *call, x []float32, xi, ldx int, y []float32, yi, ldy int) {
	v := c.im.v
	*k = call{k: c.k, x: x, ldx: ldx, y: y, ldy: ldy}
	full := l.nvec / v * v
	for _, part := range [2]struct{ j0, vecs, v int }{{0, full, v}, {full, l.nvec - full, 1}} {
		if part.vecs == 0 {
			continue
		}
		q0 := part.j0 * 16
		k.tiles, k.n = part.vecs/part.v, min(l.n-q0, part.vecs*16)
		k.xi, k.smasks, k.masks = xi+q0, l.smasks[part.j0:], l.masks[part.j0:]
		for _, tl := range c.tiles {
			for bi := 0; bi+1 < len(c.blocks); bi++ {
				g0, g1 := c.blocks[bi], c.blocks[bi+1]
				k.taps, k.offs, k.moffs = g1-g0, l.offs[g0:g1], l.moffs[g0:g1]
				k.w = c.w[tl.w+g0*c.k*tl.r:]
				k.yi, k.acc = yi+tl.o0*ldy+q0, bi > 0
				c.im.run(tl.r, part.v, k)
			}
		}
	}
}
