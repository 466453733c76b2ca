package nn

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/op"
	"github.com/shrink-ml/shrink/internal/par"
)

// A tapped convolution's two gradients both read the output gradient dy in
// the tall layout: the input gradient as the input of a convolution with
// the flipped filters, the weight gradient as the right operand of the
// per-tap products. Computed apart (tallForward for dx, tallGradW for dw)
// each transposed every chunk of dy on its own; tallBackward computes both
// per chunk from one transpose, while the chunk is still in cache.
//
// The bits are those of the two apart: every chunk's dx is the same Taps
// product of the same layout, and dw is summed over the same fixed parts
// (convParts ranges of chunks, in order) from the same operands. The dx
// layout of dy holds image b's row oh at pixel(b, oh) = output(b, oh) + pw
// + ph·wp, and its separators are zeros, so from that offset on it is
// exactly tallGradW's layout of dy.

// tallBackWork is one worker's layouts: dy as rows (the input gradient's
// input, zeroed when made, as tallWork.in), the input gradient's rows, x
// channel by channel (zeroed when made) and the narrow planes' scratch.
type tallBackWork struct{ dy, dx, x, flat, patch []float32 }

// tallBackward computes a tapped convolution's dx and dw (a par.Task over
// the weight gradient's parts).
type tallBackward struct {
	g        tallGeom // the forward's geometry (dx's is its transpose, same chunks)
	work     []tallBackWork
	wt       []float32 // the flipped filters by tap, [KK·O, C]
	offs     []int     // dx's tap offsets in the dy layout, taps·O
	parts    int
	dy, x    []float32
	w, dxOut []float32
	acc      [][]float32 // per part [KK·C, O]
	dw       *tensor.Dense
}

func (t *tallBackward) run(d convDims, dy, x, w, dx, dw []float32) {
	if t.g.taps == nil || t.g.d != d {
		t.g, t.work = tallOf(d), nil
	}
	g := &t.g
	t.parts = min(convParts, g.ch.chunks)
	workers := min(gemm.Threads(), t.parts)
	for len(t.work) < workers {
		ws := tallBackWork{dy: make([]float32, g.size*g.cout), dx: make([]float32, g.outChunk*g.cin),
			x: make([]float32, g.size*g.cin)}
		ws.flat, ws.patch = g.planeScratch(g.cout) // dx's patch rows are of dy's channels
		t.work = append(t.work, ws)
	}
	t.wt = grow(&t.wt, len(w))
	tapFilters(w, t.wt, g.cout, g.cin, g.kk, true) // w is [O, C, KK]
	t.offs = g.tapOffsets(t.offs, g.cout)
	t.acc = partialSums(t.acc, t.parts, len(dw))
	t.dy, t.x, t.dxOut = dy, x, dx
	par.Do(t, t.parts, workers)
	t.dy, t.x, t.dxOut = nil, nil, nil
	sumTapParts(g, t.acc[:t.parts], dw)
}

// sumTapParts writes dw [o, c, t] = Σ_p acc[p][t, c, o], the parts in order.
// It walks the parts in their order, o fastest, so that only the writes
// are strided: reading four parts a stride apart cost 1% of a ResNet step.
func sumTapParts(g *tallGeom, acc [][]float32, dw []float32) {
	step := g.cin * g.kk // dw's stride between output channels
	for tap := 0; tap < g.kk; tap++ {
		for c := 0; c < g.cin; c++ {
			at := (tap*g.cin + c) * g.cout
			out := dw[c*g.kk+tap:]
			first := acc[0][at : at+g.cout]
			for o, s := range first {
				for p := 1; p < len(acc); p++ {
					s += acc[p][at+o]
				}
				out[o*step] = s
			}
		}
	}
}

func (t *tallBackward) Run(part, worker int) {
	g := &t.g
	d := &g.d
	c0, c1 := part*g.ch.chunks/t.parts, (part+1)*g.ch.chunks/t.parts
	ws := &t.work[worker]
	// dy's rows from this offset on are tallGradW's layout of dy.
	dyAt := (g.pw + g.ph*g.wp) * g.cout
	for chunk := c0; chunk < c1; chunk++ {
		b0, nb := g.ch.span(chunk, d.B)
		for b := 0; b < nb; b++ {
			img := t.dy[(b0+b)*g.cout*g.plane:]
			if !g.patched() {
				g.toRows(img, g.cout, ws.dy, g.pixel(b, 0), ws.flat)
				continue
			}
			gemm.Transpose(g.cout, g.plane, img, g.plane, ws.flat, g.cout)
			g.flatToRows(ws.flat, g.cout, ws.dy, g.pixel(b, 0))
			g.toPatches(ws.flat, g.cout, ws.patch[b*g.plane*g.kk*g.cout:])
		}
		if g.patched() {
			m, lda := g.tapRows(nb, g.cout)
			gemm.Taps(m, g.cin, g.cout, t.offs, 1, ws.patch, lda, t.wt, g.cin, 0, ws.dx, g.cin)
			for b := 0; b < nb; b++ {
				gemm.Transpose(g.plane, g.cin, ws.dx[b*g.plane*g.cin:], g.cin, t.dxOut[(b0+b)*g.cin*g.plane:], g.plane)
			}
		} else {
			gemm.Taps(g.outputs(nb), g.cin, g.cout, t.offs, 1, ws.dy, g.cout, t.wt, g.cin, 0, ws.dx, g.cin)
			for b := 0; b < nb; b++ {
				g.fromRows(ws.dx, g.cin, g.output(b, 0), t.dxOut[(b0+b)*g.cin*g.plane:], ws.flat)
			}
		}
		for b := 0; b < nb; b++ {
			g.channelRows(t.x[(b0+b)*g.cin*g.plane:], ws.x, b)
		}
		beta := float32(1)
		if chunk == c0 {
			beta = 0
		}
		gemm.ShiftedA(g.cin, g.cout, g.outputs(nb), g.taps, 1, ws.x, g.size, false, ws.dy[dyAt:], g.cout, beta, t.acc[part], g.cout)
	}
}

// channelRows writes image b [C, H, W] of a chunk into x, the layout
// channel by channel ([C, size]): the left operand of the weight gradient's
// per-tap products.
func (g *tallGeom) channelRows(img, x []float32, b int) {
	W := g.d.W
	for c := 0; c < g.cin; c++ {
		for ih := 0; ih < g.d.H; ih++ {
			at := c*g.size + g.pixel(b, ih)
			copy(x[at:at+W], img[c*g.plane+ih*W:c*g.plane+(ih+1)*W])
		}
	}
}

// convBackDWOp is the weight gradient of a tapped convolution whose input
// gradient op (convBackXOp with back set) computed it along with dx: its
// fourth input, dx, orders it after that op, and Do hands over the result.
type convBackDWOp struct {
	op.Base
	back *tallBackward
}

func (o *convBackDWOp) Arity() int   { return 4 }
func (o *convBackDWOp) Type() hmType { return op.Fn(4, 4, 4, 4, 4) }
func (o *convBackDWOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.ShapeOf(in[2]).Clone(), nil
}
func (o *convBackDWOp) Do(in ...G.Value) (G.Value, error) { return o.back.dw, nil }
