package planar

import (
	"fmt"

	"github.com/shrink-ml/shrink/internal/gemm"
)

//go:generate go run asm/gen.go -out kernel_amd64.s -stubs kernel_stubs_amd64.go -pkg planar

// Shape is a convolution this package computes: C input and O output
// channels, images of H×W, an odd KH×KW kernel with padding (KH-1)/2 and
// (KW-1)/2, stride and dilation 1: the output has the input's size.
type Shape struct{ C, H, W, O, KH, KW int }

func (s Shape) check() error {
	if s.C < 1 || s.H < 1 || s.W < 1 || s.O < 1 || s.KH < 1 || s.KW < 1 {
		return fmt.Errorf("planar: shape %+v: every size must be at least 1", s)
	}
	if s.KH%2 == 0 || s.KW%2 == 0 {
		return fmt.Errorf("planar: shape %+v: the kernel must be odd (padding (k-1)/2 keeps the size)", s)
	}
	return nil
}

// Conv is a convolution with its filters laid out for the kernels, made
// once (inference: the filters do not change).
type Conv struct {
	s     Shape
	kk    int   // taps, KH·KW
	per   int   // taps per accumulator chain (gemm.TapsPerBlock)
	offs  []int // per tap: the input position minus the output position
	dy    []int // per tap: row shift
	dx    []int // per tap: column shift
	tiles []tile
	w     []float32 // per tile: [kk][C][r]
	im    *impl
}

// tile is r output channels from o0, computed by one kernel.
type tile struct{ o0, r, w int }

// New lays out w [O, C, KH, KW] for the kernels in use. It panics on a
// shape it does not compute or a short w.
func New(s Shape, w []float32) *Conv {
	if err := s.check(); err != nil {
		panic(err)
	}
	if len(w) < s.O*s.C*s.KH*s.KW {
		panic(fmt.Sprintf("planar: New: %d filter values for shape %+v, want %d", len(w), s, s.O*s.C*s.KH*s.KW))
	}
	im := active.Load()
	c := &Conv{s: s, kk: s.KH * s.KW, im: im}
	c.per = gemm.TapsPerBlock(c.kk, s.C)
	ph, pw := (s.KH-1)/2, (s.KW-1)/2
	for ki := 0; ki < s.KH; ki++ {
		for kj := 0; kj < s.KW; kj++ {
			c.dy, c.dx = append(c.dy, ki-ph), append(c.dx, kj-pw)
			c.offs = append(c.offs, (ki-ph)*s.W+kj-pw)
		}
	}
	// As few tiles as the widest kernel allows, of equal widths (±1): 45
	// channels as 15+15+15 with 15-wide kernels, 23 as 12+11, not 15+8, whose narrow tile
	// has too few accumulator chains to hide the FMA latency.
	nt := (s.O + im.rmax - 1) / im.rmax
	for i, o0 := 0, 0; i < nt; i++ {
		r := s.O / nt
		if i < s.O%nt {
			r++
		}
		c.tiles = append(c.tiles, tile{o0: o0, r: r, w: len(c.w)})
		c.w = append(c.w, make([]float32, c.kk*s.C*r)...)
		dst := c.w[len(c.w)-c.kk*s.C*r:]
		for t := 0; t < c.kk; t++ {
			for ic := 0; ic < s.C; ic++ {
				for i := 0; i < r; i++ {
					dst[(t*s.C+ic)*r+i] = w[((o0+i)*s.C+ic)*c.kk+t]
				}
			}
		}
		o0 += r
	}
	return c
}

// Shape is the convolution's shape.
func (c *Conv) Shape() Shape { return c.s }

// Scratch is one goroutine's buffers for Forward, kept between calls.
type Scratch struct {
	s                Shape
	nb, n, nvec      int      // images, positions and vectors of a pass
	ldx, ldy, margin int      // copy passes: the copies' strides, the input's margin
	masks            []uint16 // per tap, per vector: the lanes that read the image
	smasks           []uint16 // per vector: the lanes that are positions
	x, y             []float32
	k                call
}

// direct reports whether Forward computes image by image from x into y
// as they are; else it copies chunks of images into a layout of positions
// running over the images (its input with margins), and the output back.
// Image by image wastes the lanes of each image's last vector (and
// single-vector tiles compute the last positions): 7x7 images fill 4
// vectors to 77%, so those are copied, where the copies cost less than
// that waste (BenchmarkPlanarVsTall in nn).
func (c *Conv) direct() bool { return c.s.H*c.s.W >= directMin }

// directMin is the smallest image (in positions) computed in place.
var directMin = 128

// prepare sizes the buffers for nb images (again only when nb or the
// shape changed).
func (sc *Scratch) prepare(c *Conv, nb int) {
	if c.direct() {
		nb = 1
	}
	if sc.nb == nb && sc.s == c.s && sc.masks != nil {
		return
	}
	s := c.s
	p := s.H * s.W
	sc.nb, sc.s, sc.n = nb, s, nb*p
	sc.nvec = (sc.n + 15) / 16
	sc.masks = make([]uint16, c.kk*sc.nvec)
	for t := range c.kk {
		for q := 0; q < sc.n; q++ {
			pi := q % p
			ih, iw := pi/s.W+c.dy[t], pi%s.W+c.dx[t]
			if ih >= 0 && ih < s.H && iw >= 0 && iw < s.W {
				sc.masks[t*sc.nvec+q/16] |= 1 << (q % 16)
			}
		}
	}
	sc.smasks = make([]uint16, sc.nvec)
	for q := 0; q < sc.n; q++ {
		sc.smasks[q/16] |= 1 << (q % 16)
	}
	if c.direct() {
		sc.x, sc.y = nil, nil
		return
	}
	maxOff := 0
	for _, o := range c.offs {
		maxOff = max(maxOff, o, -o)
	}
	sc.margin = (maxOff + 15) / 16 * 16
	sc.ldx = sc.margin + sc.nvec*16 + sc.margin
	sc.ldy = sc.nvec * 16
	sc.x = make([]float32, s.C*sc.ldx)
	sc.y = make([]float32, s.O*sc.ldy)
}

// Forward computes y [nb, O, H, W] from x [nb, C, H, W] (nb consecutive
// images) on the calling goroutine, with sc's buffers.
func (c *Conv) Forward(x []float32, nb int, y []float32, sc *Scratch) {
	s := c.s
	p := s.H * s.W
	if nb < 1 || len(x) < nb*s.C*p || len(y) < nb*s.O*p {
		panic(fmt.Sprintf("planar: Forward of %d images of %+v: x has %d values, y %d", nb, s, len(x), len(y)))
	}
	sc.prepare(c, nb)
	if c.direct() {
		for b := range nb {
			c.pass(sc, x, b*s.C*p, p, y, b*s.O*p, p)
		}
		return
	}
	for b := range nb {
		for ic := range s.C {
			at := ic*sc.ldx + sc.margin + b*p
			copy(sc.x[at:at+p], x[(b*s.C+ic)*p:])
		}
	}
	c.pass(sc, sc.x, sc.margin, sc.ldx, sc.y, 0, sc.ldy)
	for b := range nb {
		for o := range s.O {
			at := o*sc.ldy + b*p
			copy(y[(b*s.O+o)*p:(b*s.O+o+1)*p], sc.y[at:at+p])
		}
	}
}

// pass computes sc.n positions from x[xi:] (channels ldx apart) into
// y[yi:] (ldy apart): tiles of the widest kernel's vectors, then single
// vectors for the rest.
func (c *Conv) pass(sc *Scratch, x []float32, xi, ldx int, y []float32, yi, ldy int) {
	s, v := c.s, c.im.v
	k := &sc.k
	*k = call{k: s.C, x: x, ldx: ldx, y: y, ldy: ldy, mstride: sc.nvec}
	full := sc.nvec / v * v
	for _, part := range [2]struct{ j0, vecs, v int }{{0, full, v}, {full, sc.nvec - full, 1}} {
		if part.vecs == 0 {
			continue
		}
		q0 := part.j0 * 16
		k.tiles, k.n = part.vecs/part.v, min(sc.n-q0, part.vecs*16)
		k.xi, k.smasks = xi+q0, sc.smasks[part.j0:]
		for _, tl := range c.tiles {
			for t0 := 0; t0 < c.kk; t0 += c.per {
				t1 := min(c.kk, t0+c.per)
				k.taps, k.offs, k.masks = t1-t0, c.offs[t0:t1], sc.masks[t0*sc.nvec+part.j0:]
				k.w = c.w[tl.w+t0*s.C*tl.r:]
				k.yi, k.acc = yi+tl.o0*ldy+q0, t0 > 0
				c.im.run(tl.r, part.v, k)
			}
		}
	}
}
