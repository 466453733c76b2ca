package nn

import (
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

// planarOff keeps every convolution on the tall layout or the chunked
// product (SHRINK_PLANAR=off; the same bits); tests turn it back on.
var planarOff = planar.Off()

// planarFits reports whether a fused convolution runs on package planar,
// and with which FMA chains: when planar has its AVX-512 kernels and gemm
// runs FMA kernels (whose bits planar's are; purego's plain multiply-adds
// differ), a tapped convolution with gemm.Taps' (the tall layout's), and
// an ungrouped, undilated one with an odd kernel, "same" padding and equal
// strides (ResNet's downsampling convolutions and 1x1 shortcuts) with the
// chunked im2col product's. That product goes to gemm's kernels unless it
// is a matrix-vector one (one output channel or position), which planar
// does not repeat. Planar measured faster on every ResNet-20 convolution,
// dense and pruned (BenchmarkPlanarVsTall, docs/PERFORMANCE.md).
func planarFits(d convDims) (planar.Order, bool) {
	if planarOff || planar.Impl() != "avx512" || gemm.Impl() == "purego" {
		return 0, false
	}
	if d.tapped() {
		return planar.TapsFirst, true
	}
	same := d.KH%2 == 1 && d.KW%2 == 1 && d.padding == Pair{(d.KH - 1) / 2, (d.KW - 1) / 2}
	if same && d.groups == 1 && d.dilation == Square(1) && d.stride[0] == d.stride[1] && d.O >= 2 && d.P >= 2 {
		return planar.ChannelsFirst, true
	}
	return 0, false
}

// planarForward computes a fused convolution chunk by chunk (a par.Task)
// on package planar, its filters laid out once (inference: they never
// change).
type planarForward struct {
	conv    *planar.Conv
	w       []float32 // the filters conv was made of
	order   planar.Order
	ch      chunking
	d       convDims
	x, y    []float32
	epi     *epilogue
	scratch []planar.Scratch
}

func (t *planarForward) run(d convDims, order planar.Order, x, w, y []float32, epi *epilogue) {
	s := planar.Shape{C: d.C, H: d.H, W: d.W, O: d.O, KH: d.KH, KW: d.KW, Stride: d.stride[0]}
	if t.conv == nil || t.conv.Shape() != s || t.order != order || len(t.w) != len(w) || &t.w[0] != &w[0] {
		t.conv, t.w, t.order = planar.New(s, w, order), w, order
	}
	// As many images per chunk as the tall layout takes (the input, the
	// output and planar's copies of both stay in L2), and at least 16
	// chunks per batch so both cores get work at batch 128.
	nb := max(1, min(tallBudget/max(d.C*d.H*d.W, d.O*d.P), (d.B+15)/16))
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
	t.conv.Forward(t.x[b0*d.C*d.H*d.W:(b0+nb)*d.C*d.H*d.W], nb, t.y[b0*d.O*d.P:(b0+nb)*d.O*d.P], &t.scratch[worker])
	if t.epi != nil {
		t.epi.images(t.y, b0, nb)
	}
}
