package nn

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/op"
	"github.com/shrink-ml/shrink/internal/par"
	"github.com/shrink-ml/shrink/internal/vec"
)

// Convolutions other than the plain one (any stride, padding, dilation or
// groups: ResNet's) run over the batch in chunks of a few images whose
// patches fit in the L2 cache. The whole batch's patches are tens of
// megabytes at 28x28 with 16 channels (144 values per output position),
// and writing them out and reading them back from memory, three times per
// step, cost more than the arithmetic. Per chunk, the patches are written,
// multiplied and dropped while they are still in cache; the weight
// gradient writes them again rather than keeping them from the forward.
// Chunks are independent, so they spread over gemm.Threads() goroutines.
//
// The three products, per chunk of n = images·P output positions:
//
//	forward  y [O, n]   = w [O, C·K·K] · cols(x) [C·K·K, n]
//	dx       dx [C, n]  = w' [C, O·K·K] · cols(dy) [O·K·K, n]   (stride 1)
//	dw       dwᵀ [C·K·K, O] += cols(x) [C·K·K, n] · dy [O, n]ᵀ
//
// The input gradient of a stride-1 convolution is itself a convolution of
// dy with the flipped, transposed filters w' (padding dilation·(K-1) -
// padding), which keeps its product as deep as the forward's (O·K·K, not
// O) and needs no col2im; other strides and grouped convolutions multiply
// wᵀ · dy and fold the patch gradients back with col2im.
//
// The results do not depend on the thread count: a chunk's outputs are
// computed the same way whoever computes them, and the weight gradient is
// summed over a fixed number of parts (convParts, each a fixed range of
// chunks, summed in order within it) that are then added in part order.

// colsBudget is how many patch values a chunk may hold: 512 KiB, half this
// CPU's L2, so the patches and the product's packed panels stay in it. At
// 28x28 with 16 channels a chunk is one image; at 7x7 with 64, four.
const colsBudget = 1 << 17

// convParts is how many partial sums the weight gradient is cut into, the
// most goroutines it can use.
const convParts = 4

// partialSums returns acc with at least parts buffers, each of size floats,
// reusing those it already has so that a training step allocates nothing.
func partialSums(acc [][]float32, parts, size int) [][]float32 {
	for len(acc) < parts {
		acc = append(acc, nil)
	}
	for p := range acc {
		if len(acc[p]) != size {
			acc[p] = make([]float32, size)
		}
	}
	return acc
}

// chunking is how a convolution's batch is cut: nb images per chunk.
type chunking struct{ nb, chunks int }

func chunksOf(d convDims) chunking {
	nb := max(1, min(d.B, colsBudget/(d.C*d.KH*d.KW*d.P)))
	return chunking{nb: nb, chunks: (d.B + nb - 1) / nb}
}

// span is chunk i's first image and image count.
func (c chunking) span(i, batch int) (b0, nb int) {
	b0 = i * c.nb
	return b0, min(c.nb, batch-b0)
}

// convWork is one worker's scratch: a chunk's patches, and a chunk of
// [O, n] values (the product before its reorder to [images, O, P], or dy
// gathered into that layout).
type convWork struct{ cols, tmp []float32 }

// convScratch holds a convolution op's per-worker scratch.
type convScratch []convWork

// size makes room for as many workers as the threads allow for parts
// parts, each with the scratch of one of d's chunks, and returns how many
// there are.
func (s *convScratch) size(d convDims, ch chunking, parts int) int {
	workers := min(gemm.Threads(), parts)
	n := ch.nb * d.P
	cols, tmp := d.C*d.KH*d.KW*n, d.O*n
	for len(*s) < workers {
		*s = append(*s, convWork{})
	}
	for i := range *s {
		w := &(*s)[i]
		if len(w.cols) < cols {
			w.cols = make([]float32, cols)
		}
		if len(w.tmp) < tmp {
			w.tmp = make([]float32, tmp)
		}
	}
	return workers
}

// convForward computes a convolution chunk by chunk (a par.Task).
type convForward struct {
	d       convDims
	ch      chunking
	x, w, y []float32
	work    convScratch
	epi     *epilogue // inference: applied to each chunk's output (convFusedOp)
}

func (t *convForward) run(d convDims, x, w, y []float32) {
	t.d, t.ch, t.x, t.w, t.y = d, chunksOf(d), x, w, y
	workers := t.work.size(d, t.ch, t.ch.chunks)
	par.Do(t, t.ch.chunks, workers)
	t.x, t.w, t.y = nil, nil, nil
}

func (t *convForward) Run(chunk, worker int) {
	d := t.d
	b0, nb := t.ch.span(chunk, d.B)
	n := nb * d.P
	ws := &t.work[worker]
	cols := ws.cols[:d.C*d.KH*d.KW*n]
	im2colGeneral(t.x, cols, d, b0, nb)
	// One image's [O, P] is its slice of y; more are reordered after.
	out := ws.tmp[:d.O*n]
	if nb == 1 {
		out = t.y[b0*d.O*d.P : (b0+1)*d.O*d.P]
	}
	for g := 0; g < d.groups; g++ {
		gemm.SgemmSerial(false, false, d.Og, n, d.CKK, 1, t.w[g*d.Og*d.CKK:], d.CKK, cols[g*d.CKK*n:], n, 0, out[g*d.Og*n:], n)
	}
	if nb > 1 {
		scatterImages(out, t.y[b0*d.O*d.P:], nb, d.O, d.P)
	}
	if t.epi != nil {
		t.epi.images(t.y, b0, nb)
	}
}

// scatterImages copies src [O, nb·P] to dst [nb, O, P].
func scatterImages(src, dst []float32, nb, o, p int) {
	n := nb * p
	for b := 0; b < nb; b++ {
		for c := 0; c < o; c++ {
			copy(dst[(b*o+c)*p:(b*o+c+1)*p], src[c*n+b*p:c*n+(b+1)*p])
		}
	}
}

// gatherImages copies src [nb, O, P] to dst [O, nb·P].
func gatherImages(src, dst []float32, nb, o, p int) {
	n := nb * p
	for b := 0; b < nb; b++ {
		for c := 0; c < o; c++ {
			copy(dst[c*n+b*p:c*n+(b+1)*p], src[(b*o+c)*p:(b*o+c+1)*p])
		}
	}
}

// chunkOf returns dy's values for images [b0, b0+nb) as [O, nb·P]: dy's own
// slice for one image, else gathered into buf.
func chunkOf(dy, buf []float32, b0, nb, o, p int) []float32 {
	if nb == 1 {
		return dy[b0*o*p : (b0+1)*o*p]
	}
	buf = buf[:o*nb*p]
	gatherImages(dy[b0*o*p:], buf, nb, o, p)
	return buf
}

// chunkedDiff adds the gradient ops of a chunked convolution.
func (o *conv2dOp) chunkedDiff(inputs G.Nodes, grad *G.Node) (G.Nodes, error) {
	bx := &convBackXOp{Base: op.NewBase(o.Name() + ".dx"), convParams: o.convParams}
	if o.tappedShape(inputs[1].Shape()) && inputs[0].Op() != nil {
		// Both gradients from one pass over dy (convtaps_back.go). Not when x
		// is the graph's input: nothing needs its gradient, and the
		// executor would compute it only because dw waits for it.
		bx.back = &tallBackward{}
		dx, err := G.ApplyOp(bx, grad, inputs[0], inputs[1])
		if err != nil {
			return nil, err
		}
		dw, err := G.ApplyOp(&convBackDWOp{Base: op.NewBase(o.Name() + ".dw"), back: bx.back}, grad, inputs[0], inputs[1], dx)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dx, dw}, nil
	}
	dx, err := G.ApplyOp(bx, grad, inputs[0], inputs[1])
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(&convBackWOp{Base: op.NewBase(o.Name() + ".dw"), convParams: o.convParams}, grad, inputs[0], inputs[1])
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw}, nil
}

// tappedShape reports whether the convolution with filters of shape w runs
// on the tall layout (convDims.tapped).
func (p convParams) tappedShape(w tensor.Shape) bool {
	return len(w) == 4 && convDims{convParams: p, KH: w[2], KW: w[3]}.tapped()
}

// transposable reports whether the input gradient is a stride-1 convolution
// of dy (see the top of this file).
func (d convDims) transposable() bool {
	return d.stride == Square(1) && d.groups == 1 &&
		d.padding[0] <= d.dilation[0]*(d.KH-1) && d.padding[1] <= d.dilation[1]*(d.KW-1)
}

// transposed is the geometry of the convolution that computes dx from dy.
func (d convDims) transposed() convDims {
	t := convDims{
		convParams: convParams{stride: Square(1), dilation: d.dilation, groups: 1,
			padding: Pair{d.dilation[0]*(d.KH-1) - d.padding[0], d.dilation[1]*(d.KW-1) - d.padding[1]}},
		B: d.B, C: d.O, H: d.OH, W: d.OW, O: d.C, KH: d.KH, KW: d.KW, OH: d.H, OW: d.W,
	}
	t.P = t.OH * t.OW
	t.Cg, t.Og, t.CKK = t.C, t.O, t.C*t.KH*t.KW
	return t
}

// flipFilters writes w' [C, O, KH, KW], w' [c, o, i, j] = w [o, c, KH-1-i,
// KW-1-j], from w [O, C, KH, KW].
func flipFilters(w, dst []float32, o, c, kh, kw int) {
	kk := kh * kw
	for oc := 0; oc < o; oc++ {
		for ic := 0; ic < c; ic++ {
			src := w[(oc*c+ic)*kk : (oc*c+ic+1)*kk]
			out := dst[(ic*o+oc)*kk : (ic*o+oc+1)*kk]
			for i, v := range src {
				out[kk-1-i] = v
			}
		}
	}
}

// convBackXOp is a chunked convolution's input gradient, from dy, x (for its
// shape) and w.
type convBackXOp struct {
	op.Base
	convParams
	tall    tallForward   // dx as a convolution of dy on the tall layout
	back    *tallBackward // or, with dw too (chunkedDiff sets it)
	flipped []float32     // w', for the transposed convolution
	conv    convForward   // dx as a convolution of dy
	cols    convColsX     // or through col2im
	out     *tensor.Dense
}

func (o *convBackXOp) Arity() int   { return 3 }
func (o *convBackXOp) Type() hmType { return op.Fn(4, 4, 4, 4) }
func (o *convBackXOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[1]).Clone(), nil
}
func (o *convBackXOp) Do(in ...G.Value) (G.Value, error) {
	d := o.geometry(op.Dims(in[1]), op.Dims(in[2]))
	dx := op.Buffer(&o.out, d.B, d.C, d.H, d.W)
	dy, w := op.F32(in[0]), op.F32(in[2])
	if d.tapped() && o.back != nil {
		dw := op.Buffer(&o.back.dw, op.Dims(in[2])...)
		o.back.run(d, dy, op.F32(in[1]), w, op.F32(dx), op.F32(dw))
		return dx, nil
	}
	if d.tapped() {
		o.tall.run(d.transposed(), dy, w, op.F32(dx), true)
		return dx, nil
	}
	if d.transposable() {
		if len(o.flipped) != len(w) {
			o.flipped = make([]float32, len(w))
		}
		flipFilters(w, o.flipped, d.O, d.C, d.KH, d.KW)
		o.conv.run(d.transposed(), dy, o.flipped, op.F32(dx))
		return dx, nil
	}
	o.cols.run(d, dy, w, op.F32(dx))
	return dx, nil
}

// convColsX computes dx chunk by chunk as the patch gradients wᵀ · dy,
// folded back by col2im (a par.Task).
type convColsX struct {
	d        convDims
	ch       chunking
	dy, w, x []float32
	work     convScratch
}

func (t *convColsX) run(d convDims, dy, w, dx []float32) {
	t.d, t.ch, t.dy, t.w, t.x = d, chunksOf(d), dy, w, dx
	workers := t.work.size(d, t.ch, t.ch.chunks)
	par.Do(t, t.ch.chunks, workers)
	t.dy, t.w, t.x = nil, nil, nil
}

func (t *convColsX) Run(chunk, worker int) {
	d := t.d
	b0, nb := t.ch.span(chunk, d.B)
	n := nb * d.P
	ws := &t.work[worker]
	dy := chunkOf(t.dy, ws.tmp, b0, nb, d.O, d.P)
	dcols := ws.cols[:d.C*d.KH*d.KW*n]
	for g := 0; g < d.groups; g++ {
		gemm.SgemmSerial(true, false, d.CKK, n, d.Og, 1, t.w[g*d.Og*d.CKK:], d.CKK, dy[g*d.Og*n:], n, 0, dcols[g*d.CKK*n:], n)
	}
	col2imGeneral(dcols, t.x, d, b0, nb)
}

// convBackWOp is a chunked convolution's weight gradient, from dy, x and w
// (for its shape).
type convBackWOp struct {
	op.Base
	convParams
	tall tallGradW
	task convGradW
	out  *tensor.Dense
}

func (o *convBackWOp) Arity() int   { return 3 }
func (o *convBackWOp) Type() hmType { return op.Fn(4, 4, 4, 4) }
func (o *convBackWOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[2]).Clone(), nil
}
func (o *convBackWOp) Do(in ...G.Value) (G.Value, error) {
	ws := op.Dims(in[2])
	d := o.geometry(op.Dims(in[1]), ws)
	dw := op.Buffer(&o.out, ws...)
	if d.tapped() {
		o.tall.run(d, op.F32(in[0]), op.F32(in[1]), op.F32(dw))
		return dw, nil
	}
	o.task.run(d, op.F32(in[0]), op.F32(in[1]), op.F32(dw))
	return dw, nil
}

// convGradW sums dwᵀ = cols(x) · dyᵀ over the chunks: part p of convParts
// sums a fixed range of chunks into acc[p] (a par.Task), and the parts are
// added in order.
type convGradW struct {
	d     convDims
	ch    chunking
	parts int
	dy, x []float32
	acc   [][]float32 // per part, per group [C/G·K·K, O/G]
	work  convScratch
}

func (t *convGradW) run(d convDims, dy, x, dw []float32) {
	t.d, t.ch, t.dy, t.x = d, chunksOf(d), dy, x
	t.parts = min(convParts, t.ch.chunks)
	t.acc = partialSums(t.acc, t.parts, len(dw))
	workers := t.work.size(d, t.ch, t.parts)
	par.Do(t, t.parts, workers)
	t.dy, t.x = nil, nil
	// dw [g·Og+o, r] = Σ_p acc[p][g][r, o].
	for g := 0; g < d.groups; g++ {
		for o := 0; o < d.Og; o++ {
			row := dw[(g*d.Og+o)*d.CKK : (g*d.Og+o+1)*d.CKK]
			for r := range row {
				at := g*d.CKK*d.Og + r*d.Og + o
				s := t.acc[0][at]
				for p := 1; p < t.parts; p++ {
					s += t.acc[p][at]
				}
				row[r] = s
			}
		}
	}
}

func (t *convGradW) Run(part, worker int) {
	d := t.d
	c0, c1 := part*t.ch.chunks/t.parts, (part+1)*t.ch.chunks/t.parts
	acc := t.acc[part]
	ws := &t.work[worker]
	for chunk := c0; chunk < c1; chunk++ {
		b0, nb := t.ch.span(chunk, d.B)
		n := nb * d.P
		cols := ws.cols[:d.C*d.KH*d.KW*n]
		im2colGeneral(t.x, cols, d, b0, nb)
		dy := chunkOf(t.dy, ws.tmp, b0, nb, d.O, d.P)
		beta := float32(1)
		if chunk == c0 {
			beta = 0
		}
		for g := 0; g < d.groups; g++ {
			gemm.SgemmSerial(false, true, d.CKK, d.Og, n, 1, cols[g*d.CKK*n:], n, dy[g*d.Og*n:], n, beta, acc[g*d.CKK*d.Og:], d.Og)
		}
	}
}

// im2colGeneral writes the patches of images [b0, b0+nb) of x [B, C, H, W]
// as the columns of cols [C·KH·KW, nb·P], with strides, zero padding and
// dilation: row (c, ki, kj) holds x[b, c, oh·sh-ph+ki·dh, ow·sw-pw+kj·dw]
// for every (b, oh, ow), zero where that falls outside the image.
func im2colGeneral(x, cols []float32, d convDims, b0, nb int) {
	n := nb * d.P
	sh, sw, ph, pw, dh, dw := d.stride[0], d.stride[1], d.padding[0], d.padding[1], d.dilation[0], d.dilation[1]
	r := 0
	for c := 0; c < d.C; c++ {
		for ki := 0; ki < d.KH; ki++ {
			for kj := 0; kj < d.KW; kj++ {
				dst := cols[r*n : (r+1)*n]
				iw0 := kj*dw - pw
				// The output columns whose input column is inside the image.
				lo, hi := validRange(iw0, sw, d.W, d.OW)
				if sw == 2 && lo < hi {
					im2colStride2(x, dst, d, b0, nb, c, ki*dh-ph, iw0, lo, hi)
					r++
					continue
				}
				for b := 0; b < nb; b++ {
					plane := x[((b0+b)*d.C+c)*d.H*d.W:]
					for oh := 0; oh < d.OH; oh++ {
						seg := dst[b*d.P+oh*d.OW : b*d.P+(oh+1)*d.OW]
						ih := oh*sh - ph + ki*dh
						if ih < 0 || ih >= d.H || lo >= hi {
							clear(seg)
							continue
						}
						line := plane[ih*d.W : (ih+1)*d.W]
						clear(seg[:lo])
						if sw == 1 {
							copy(seg[lo:hi], line[iw0+lo:iw0+hi])
						} else {
							for ow := lo; ow < hi; ow++ {
								seg[ow] = line[ow*sw+iw0]
							}
						}
						clear(seg[hi:])
					}
				}
				r++
			}
		}
	}
}

// im2colStride2 is im2colGeneral's row of patches for channel c and one tap
// (input row oh·sh + ih0, column 2·ow + iw0) at stride 2 along rows:
// vec.Gather2 copies the valid outputs lo..hi of the valid rows, and the
// padding around them is cleared.
func im2colStride2(x, dst []float32, d convDims, b0, nb, c, ih0, iw0, lo, hi int) {
	sh := d.stride[0]
	oLo, oHi := validRange(ih0, sh, d.H, d.OH)
	for b := 0; b < nb; b++ {
		out := dst[b*d.P : (b+1)*d.P]
		clear(out[:oLo*d.OW])
		clear(out[oHi*d.OW:])
		for oh := oLo; oh < oHi; oh++ {
			clear(out[oh*d.OW : oh*d.OW+lo])
			clear(out[oh*d.OW+hi : (oh+1)*d.OW])
		}
		if oLo < oHi {
			plane := x[((b0+b)*d.C+c)*d.H*d.W : ((b0+b)*d.C+c+1)*d.H*d.W]
			vec.Gather2(out[oLo*d.OW+lo:], d.OW, plane[(oLo*sh+ih0)*d.W+iw0+2*lo:], sh*d.W, oHi-oLo, hi-lo)
		}
	}
}

// col2imGeneral sets images [b0, b0+nb) of dx [B, C, H, W] from the patch
// gradients dcols [C·KH·KW, nb·P], im2colGeneral's transpose: gradients that
// fall on the padding are dropped.
func col2imGeneral(dcols, dx []float32, d convDims, b0, nb int) {
	clear(dx[b0*d.C*d.H*d.W : (b0+nb)*d.C*d.H*d.W])
	n := nb * d.P
	sh, sw, ph, pw, dh, dw := d.stride[0], d.stride[1], d.padding[0], d.padding[1], d.dilation[0], d.dilation[1]
	for c := 0; c < d.C; c++ {
		for ki := 0; ki < d.KH; ki++ {
			for kj := 0; kj < d.KW; kj++ {
				r := (c*d.KH+ki)*d.KW + kj
				src := dcols[r*n : (r+1)*n]
				iw0 := kj*dw - pw
				lo, hi := validRange(iw0, sw, d.W, d.OW)
				if sw == 2 {
					// One tap adds at most once to each value: the rows in one
					// call keep every value's order of sums.
					ih0 := ki*dh - ph
					oLo, oHi := validRange(ih0, sh, d.H, d.OH)
					if lo >= hi || oLo >= oHi {
						continue
					}
					for b := 0; b < nb; b++ {
						plane := dx[((b0+b)*d.C+c)*d.H*d.W : ((b0+b)*d.C+c+1)*d.H*d.W]
						vec.AddTo2(plane[(oLo*sh+ih0)*d.W+iw0+2*lo:], sh*d.W, src[b*d.P+oLo*d.OW+lo:], d.OW, oHi-oLo, hi-lo)
					}
					continue
				}
				for b := 0; b < nb; b++ {
					plane := dx[((b0+b)*d.C+c)*d.H*d.W:]
					for oh := 0; oh < d.OH; oh++ {
						ih := oh*sh - ph + ki*dh
						if ih < 0 || ih >= d.H {
							continue
						}
						line := plane[ih*d.W : (ih+1)*d.W]
						seg := src[b*d.P+oh*d.OW:]
						for ow := lo; ow < hi; ow++ {
							line[ow*sw+iw0] += seg[ow]
						}
					}
				}
			}
		}
	}
}
