package nn

import (
	"os"

	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/par"
	"github.com/shrink-ml/shrink/internal/planar"
)

// Fused (inference) "same" stride-1 convolutions can run on package planar
// instead of the tall layout: vectorized over output positions, on the
// channels-first data as it is, with the same bits (planar computes
// gemm.Taps' FMA chains; TestPlanarMatchesTall). Over output channels, as
// gemm.Taps vectorizes, a structurally pruned network's 11, 25 or 42
// channels waste lanes of the 16-wide tiles, and the tall layout costs a
// transpose of the input and the output.

// planarOff, set by SHRINK_PLANAR=off, keeps every convolution on the tall
// layout (to compare the two).
var planarOff = os.Getenv("SHRINK_PLANAR") == "off"

// planarFits reports whether a fused convolution runs on package planar:
// a tapped one, when planar has its AVX-512 kernels and gemm runs FMA
// kernels (whose bits planar's are; purego's plain multiply-adds differ).
func planarFits(d convDims) bool {
	return !planarOff && d.tapped() && planar.Impl() == "avx512" && gemm.Impl() != "purego"
}

// planarForward computes a fused convolution chunk by chunk (a par.Task)
// on package planar, its filters laid out once (inference: they never
// change).
type planarForward struct {
	conv    *planar.Conv
	w       []float32 // the filters conv was made of
	ch      chunking
	d       convDims
	x, y    []float32
	epi     *epilogue
	scratch []planar.Scratch
}

func (t *planarForward) run(d convDims, x, w, y []float32, epi *epilogue) {
	s := planar.Shape{C: d.C, H: d.H, W: d.W, O: d.O, KH: d.KH, KW: d.KW}
	if t.conv == nil || t.conv.Shape() != s || len(t.w) != len(w) || &t.w[0] != &w[0] {
		t.conv, t.w = planar.New(s, w), w
	}
	// As many images per chunk as the tall layout takes (the input, the
	// output and planar's copies of both stay in L2), and at least 16
	// chunks per batch so both cores get work at batch 128.
	nb := max(1, min(tallBudget/(max(d.C, d.O)*d.H*d.W), (d.B+15)/16))
	t.d, t.ch = d, chunking{nb: nb, chunks: (d.B + nb - 1) / nb}
	workers := min(gemm.Threads(), t.ch.chunks)
	for len(t.scratch) < workers {
		t.scratch = append(t.scratch, planar.Scratch{})
	}
	t.x, t.y, t.epi = x, y, epi
	par.Do(t, t.ch.chunks, workers)
	t.x, t.y = nil, nil
}

func (t *planarForward) Run(chunk, worker int) {
	d := &t.d
	b0, nb := t.ch.span(chunk, d.B)
	t.conv.Forward(t.x[b0*d.C*d.H*d.W:], nb, t.y[b0*d.O*d.P:], &t.scratch[worker])
	if t.epi != nil {
		t.epi.images(t.y, b0, nb)
	}
}
