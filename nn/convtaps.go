package nn

import (
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/par"
)

// A stride-1 convolution whose padding keeps the image size (kernel 2p+1,
// padding p: ResNet's 3x3 convolutions) needs no patches at all. The chunk
// of images is laid out once, with its padding, as a tall image whose
// pixels are rows of channel values; each output pixel is then a sum over
// the kernel's taps of that layout shifted by a constant per tap
// (gemm.Taps), and the weight gradient per tap is one product of the
// shifted layout with the output gradient (gemm.ShiftedA). The layouts cost
// a transpose of the chunk's input and output, where patches cost K·K
// copies of every input value.
//
// The tall layout of nb images of H×W: rows of Wp = W + pw values, the
// last pw of them zeros; ph zero rows above the first image and after each
// one; pw zeros before the first row. One run of pw zeros serves as the
// right padding of a row and the left padding of the next, and ph zero
// rows as the bottom padding of an image and the top padding of the next,
// so the output over the layout wastes only those separators: 1/W of the
// columns and 1/H of the rows at padding 1. Output position q (the row and
// column of the layout, counted from the first image row) reads input q +
// ki·Wp + kj at tap (ki, kj).

// tapped reports whether a convolution runs on the tall layout.
func (d convDims) tapped() bool {
	return d.stride == Square(1) && d.dilation == Square(1) && d.groups == 1 &&
		d.KH == 2*d.padding[0]+1 && d.KW == 2*d.padding[1]+1
}

// tallBudget bounds a chunk's images (values of the wider of input and
// output): 128 KiB, so the layouts and the packed filters stay in L2.
const tallBudget = 1 << 15

// tallGeom is the tall layout of a convolution's chunks.
type tallGeom struct {
	d         convDims
	ch        chunking
	wp, rows  int   // row length, rows of a full chunk
	size      int   // values per channel of a full chunk's layout
	taps      []int // offset of each tap, ki·wp + kj
	ph, pw    int
	imageRows int // rows per image with its separator: H + ph
	plane, kk int // H·W, KH·KW
	cin, cout int
	outChunk  int // output positions of a full chunk
	// runs are the copies that write an image's patch rows (patched).
	runs []patchRun
}

// patchRun copies n pixels' channels from pixel src of an image's [H·W, C]
// plane to its patch rows [H·W, KK·C] at (pixel, tap) index dst: the taps
// kj of one kernel row that fall inside the image, which read consecutive
// pixels.
type patchRun struct{ dst, src, n int }

// tallOf lays out a tapped convolution's chunks. Chunks hold a few images
// at most, and at least 16 chunks are cut from a batch, so both cores get
// work at batch 128.
func tallOf(d convDims) tallGeom {
	nb := max(1, min(tallBudget/(max(d.C, d.O)*d.H*d.W), (d.B+15)/16))
	g := tallGeom{d: d, ch: chunking{nb: nb, chunks: (d.B + nb - 1) / nb},
		ph: d.padding[0], pw: d.padding[1], wp: d.W + d.padding[1], imageRows: d.H + d.padding[0],
		plane: d.H * d.W, kk: d.KH * d.KW, cin: d.C, cout: d.O}
	g.rows = g.ph + nb*g.imageRows
	g.size = g.pw + g.rows*g.wp + g.pw
	g.outChunk = g.outputs(nb)
	for ki := 0; ki < d.KH; ki++ {
		for kj := 0; kj < d.KW; kj++ {
			g.taps = append(g.taps, ki*g.wp+kj)
		}
	}
	if g.patched() {
		for oh := 0; oh < d.H; oh++ {
			for ow := 0; ow < d.W; ow++ {
				for ki := 0; ki < d.KH; ki++ {
					ih := oh + ki - g.ph
					lo, hi := max(0, g.pw-ow), min(d.KW, d.W+g.pw-ow)
					if ih < 0 || ih >= d.H || lo >= hi {
						continue
					}
					g.runs = append(g.runs, patchRun{dst: (oh*d.W+ow)*g.kk + ki*d.KW + lo, src: ih*d.W + ow + lo - g.pw, n: hi - lo})
				}
			}
		}
	}
	return g
}

// patched reports whether chunks are multiplied as patch rows, each output
// pixel's KK·C inputs in tap order, instead of on the tall layout: images
// so small that its separators would cost a large share of the products
// (31% more at 7×7, against 7% at 28×28). gemm.Taps multiplies the patch
// rows with tap t at column t·C, so every output sums the same products in
// the same order as on the tall layout (zeros where a tap falls on the
// padding), and gives the same bits; the output rows are the images' planes
// as [H·W, O] without separators.
func (g *tallGeom) patched() bool { return g.narrow() && patchNarrow }

// patchNarrow is false only in tests, which check that both ways give the
// same bits.
var patchNarrow = true

// toPatches writes an image's patch rows, [H·W, KK·C], from its [H·W, C]
// plane. The taps that fall on the padding are never written: the rows
// are zeroed when made.
func (g *tallGeom) toPatches(flat []float32, c int, dst []float32) {
	for _, r := range g.runs {
		copy(dst[r.dst*c:(r.dst+r.n)*c], flat[r.src*c:(r.src+r.n)*c])
	}
}

// tapOffsets writes the taps' offsets into a chunk's operand for c channels:
// the tall layout's shifts, or the patch rows' columns.
func (g *tallGeom) tapOffsets(offs []int, c int) []int {
	offs = offs[:0]
	for t, o := range g.taps {
		if g.patched() {
			o = t
		}
		offs = append(offs, o*c)
	}
	return offs
}

// tapRows returns the row count and stride of a chunk of nb images' left
// operand for c channels (tall layout or patch rows).
func (g *tallGeom) tapRows(nb, c int) (m, lda int) {
	if g.patched() {
		return nb * g.plane, g.kk * c
	}
	return g.outputs(nb), c
}

// outputs is the output positions of a chunk of nb images.
func (g *tallGeom) outputs(nb int) int { return (nb*g.imageRows - g.ph) * g.wp }

// pixel is the layout index of image b's row ih, column 0.
func (g *tallGeom) pixel(b, ih int) int { return g.pw + (g.ph+b*g.imageRows+ih)*g.wp }

// output is the output position of image b's row oh, column 0.
func (g *tallGeom) output(b, oh int) int { return (b*g.imageRows + oh) * g.wp }

// tallWork is one worker's layouts. They are zeroed when made: the pixels
// are rewritten for every chunk, the separators and the positions outside
// the images never.
type tallWork struct{ in, out, flat, patch, stack []float32 }

// tallScratch is an op's per-worker layouts for one geometry.
type tallScratch struct {
	g    tallGeom
	work []tallWork
}

// prepare lays out d's chunks (again only when d changed) and returns the
// number of workers, with room for each.
func (s *tallScratch) prepare(d convDims, parts func(*tallGeom) int) int {
	if s.g.taps == nil || s.g.d != d {
		s.g, s.work = tallOf(d), nil
	}
	g := &s.g
	workers := min(gemm.Threads(), parts(g))
	for len(s.work) < workers {
		w := tallWork{in: make([]float32, g.size*g.cin), out: make([]float32, g.outChunk*g.cout)}
		w.flat, w.patch = g.planeScratch(g.cin)
		if g.stacked() {
			w.stack = make([]float32, g.kk*g.outChunk)
		}
		s.work = append(s.work, w)
	}
	return workers
}

// planeScratch is a worker's room for transposing whole planes (narrow or
// patched images) and for the patch rows of ch channels (patched); nil
// where the geometry needs none.
func (g *tallGeom) planeScratch(ch int) (flat, patch []float32) {
	if g.narrow() || g.patched() {
		flat = make([]float32, g.plane*max(g.cin, g.cout))
	}
	if g.patched() {
		patch = make([]float32, g.ch.nb*g.plane*g.kk*ch)
	}
	return flat, patch
}

// narrow reports whether images are narrower than gemm.Transpose's 8×8
// blocks: their rows would be transposed value by value, so toRows and
// fromRows transpose whole planes through a flat [H·W, C] scratch instead
// (ResNet-20's 7×7 layer3).
func (g *tallGeom) narrow() bool { return g.d.W < 8 }

// toRows writes image img [c, H, W] into a layout as rows of channels: pixel
// (ih, iw) at position base + ih·wp + iw.
func (g *tallGeom) toRows(img []float32, c int, dst []float32, base int, flat []float32) {
	W := g.d.W
	if !g.narrow() {
		for ih := 0; ih < g.d.H; ih++ {
			gemm.Transpose(c, W, img[ih*W:], g.plane, dst[(base+ih*g.wp)*c:], c)
		}
		return
	}
	gemm.Transpose(c, g.plane, img, g.plane, flat, c)
	g.flatToRows(flat, c, dst, base)
}

// flatToRows writes an image's [H·W, c] plane into a layout at base, as
// toRows does.
func (g *tallGeom) flatToRows(flat []float32, c int, dst []float32, base int) {
	W := g.d.W
	for ih := 0; ih < g.d.H; ih++ {
		at := (base + ih*g.wp) * c
		copy(dst[at:at+W*c], flat[ih*W*c:(ih+1)*W*c])
	}
}

// fromRows is toRows' inverse: image img [c, H, W] from the layout's rows
// at base + oh·wp.
func (g *tallGeom) fromRows(src []float32, c, base int, img, flat []float32) {
	W := g.d.W
	if !g.narrow() {
		for oh := 0; oh < g.d.H; oh++ {
			gemm.Transpose(W, c, src[(base+oh*g.wp)*c:], c, img[oh*W:], g.plane)
		}
		return
	}
	for oh := 0; oh < g.d.H; oh++ {
		at := (base + oh*g.wp) * c
		copy(flat[oh*W*c:(oh+1)*W*c], src[at:at+W*c])
	}
	gemm.Transpose(g.plane, c, flat, c, img, g.plane)
}

func chunksOfTall(g *tallGeom) int { return g.ch.chunks }
func partsOfTall(g *tallGeom) int  { return min(convParts, g.ch.chunks) }

// tallForward computes a tapped convolution chunk by chunk (a par.Task):
// y [B, Cout, H, W] from x [B, Cin, H, W] and the filters by tap, wt
// [KK·Cin, Cout]. The input gradient is one too, of dy by the flipped
// filters.
type tallForward struct {
	s    tallScratch
	offs []int // taps·Cin
	wt   []float32
	x, y []float32
	epi  *epilogue // inference: applied to each chunk's output (convFusedOp)
	// fixedW (inference): the filters never change, so they are laid out
	// by tap once (infer.New's contract: the model does not change).
	fixedW bool
}

// run computes y from x with filters w [Cout, Cin, KK] (flipped: w is the
// forward's [Cin, Cout, KK], and this is its input gradient).
func (t *tallForward) run(d convDims, x, w, y []float32, flip bool) {
	workers := t.s.prepare(d, chunksOfTall)
	g := &t.s.g
	switch {
	case t.fixedW && len(t.wt) == len(w):
		// inference: the filters were laid out by the first call
	case flip:
		t.wt = grow(&t.wt, len(w))
		tapFilters(w, t.wt, g.cin, g.cout, g.kk, true)
	default:
		t.wt = grow(&t.wt, len(w))
		tapFilters(w, t.wt, g.cout, g.cin, g.kk, false)
	}
	t.x, t.y = x, y
	t.offs = g.tapOffsets(t.offs, g.cin)
	par.Do(t, g.ch.chunks, workers)
	t.x, t.y = nil, nil
}

func (t *tallForward) Run(chunk, worker int) {
	g := &t.s.g
	d := &g.d
	b0, nb := g.ch.span(chunk, d.B)
	ws := &t.s.work[worker]
	m, lda := g.tapRows(nb, g.cin)
	if g.patched() {
		for b := 0; b < nb; b++ {
			gemm.Transpose(g.cin, g.plane, t.x[(b0+b)*g.cin*g.plane:], g.plane, ws.flat, g.cin)
			g.toPatches(ws.flat, g.cin, ws.patch[b*g.plane*lda:])
		}
		gemm.Taps(m, g.cout, g.cin, t.offs, 1, ws.patch, lda, t.wt, g.cout, 0, ws.out, g.cout)
		for b := 0; b < nb; b++ {
			gemm.Transpose(g.plane, g.cout, ws.out[b*g.plane*g.cout:], g.cout, t.y[(b0+b)*g.cout*g.plane:], g.plane)
		}
	} else {
		for b := 0; b < nb; b++ {
			g.toRows(t.x[(b0+b)*g.cin*g.plane:], g.cin, ws.in, g.pixel(b, 0), ws.flat)
		}
		gemm.Taps(m, g.cout, g.cin, t.offs, 1, ws.in, lda, t.wt, g.cout, 0, ws.out, g.cout)
		for b := 0; b < nb; b++ {
			g.fromRows(ws.out, g.cout, g.output(b, 0), t.y[(b0+b)*g.cout*g.plane:], ws.flat)
		}
	}
	if t.epi != nil {
		t.epi.images(t.y, b0, nb)
	}
}

// tapFilters writes w [O, C, KK] as wt [KK·C, O] (tap-major rows), the
// taps in reverse order when flip: for the input gradient, whose filters
// are w' [C, O, KK] with the taps reversed, laid out as [KK·O, C].
func tapFilters(w, wt []float32, o, c, kk int, flip bool) {
	for oc := 0; oc < o; oc++ {
		for ic := 0; ic < c; ic++ {
			src := w[(oc*c+ic)*kk : (oc*c+ic+1)*kk]
			for t, v := range src {
				if flip {
					wt[((kk-1-t)*o+oc)*c+ic] = v
				} else {
					wt[(t*c+ic)*o+oc] = v
				}
			}
		}
	}
}

// tallGradW sums the weight gradient of a tapped convolution over the
// chunks in convParts fixed parts (a par.Task), as convGradW does: per tap
// t, dw_t [C, O] = shifted x [C, positions] · dy [positions, O].
type tallGradW struct {
	s     tallScratch
	parts int
	x, dy []float32
	acc   [][]float32 // per part [KK·C, O]
}

func (t *tallGradW) run(d convDims, dy, x, dw []float32) {
	workers := t.s.prepare(d, partsOfTall)
	g := &t.s.g
	t.x, t.dy = x, dy
	t.parts = min(convParts, g.ch.chunks)
	t.acc = partialSums(t.acc, t.parts, len(dw))
	par.Do(t, t.parts, workers)
	t.x, t.dy = nil, nil
	sumTapParts(g, t.acc[:t.parts], dw)
}

func (t *tallGradW) Run(part, worker int) {
	g := &t.s.g
	d := &g.d
	c0, c1 := part*g.ch.chunks/t.parts, (part+1)*g.ch.chunks/t.parts
	ws := &t.s.work[worker]
	for chunk := c0; chunk < c1; chunk++ {
		b0, nb := g.ch.span(chunk, d.B)
		// x channel by channel ([C, size]); dy as rows of channels.
		for b := 0; b < nb; b++ {
			g.channelRows(t.x[(b0+b)*g.cin*g.plane:], ws.in, b)
			g.toRows(t.dy[(b0+b)*g.cout*g.plane:], g.cout, ws.out, g.output(b, 0), ws.flat)
		}
		beta := float32(1)
		if chunk == c0 {
			beta = 0
		}
		k := g.outputs(nb)
		if g.stacked() {
			// One input channel (a network's first convolution): ShiftedA
			// would run one-row products, a 16- or 24-row tile per row.
			// Its row per tap, stacked, is one product of KK rows with the
			// same sums (ShiftedA's C_t has Sgemm's bits).
			for tap, o := range g.taps {
				copy(ws.stack[tap*k:(tap+1)*k], ws.in[o:o+k])
			}
			gemm.SgemmSerial(false, false, g.kk, g.cout, k, 1, ws.stack, k, ws.out, g.cout, beta, t.acc[part], g.cout)
			continue
		}
		gemm.ShiftedA(g.cin, g.cout, k, g.taps, 1, ws.in, g.size, false, ws.out, g.cout, beta, t.acc[part], g.cout)
	}
}

// stacked reports whether the weight gradient stacks the taps' shifted
// inputs as the rows of one product: one input channel, and more than one
// output channel (a one-column product would go to Sgemm's matrix-vector
// path, whose sums are not ShiftedA's).
func (g *tallGeom) stacked() bool { return g.cin == 1 && g.cout > 1 && g.kk > 1 }
