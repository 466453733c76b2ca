package qgemm

import (
	"fmt"
	"unsafe"
)

// TapBlock is the number of output positions the taps kernels compute at
// once: ConvTaps computes its positions rounded up to a multiple of it.
const TapBlock = 32

// tapsMaxR is the most output channels one taps tile holds (asm/gen.go).
const tapsMaxR = 15

// TapFilter is a convolution's int8 weights [O, C, taps] laid out for
// ConvTaps: output channels in tiles of at most 15, each tile's weights
// [taps][C/4][channels][4] (C rounded up to a multiple of 4 with zeros),
// so that a kernel broadcasts one channel's 4 weights of a tap against 16
// positions' 4 codes. It keeps each output channel's weight sum for the
// zero-point correction, as Packed does.
type TapFilter struct {
	o, c, cg, nt int
	tiles        []tapTile
	data         []int8
	rowSum       []int32
}

// tapTile is output channels [o0, o0+r), their weights at data[off:].
type tapTile struct{ o0, r, off int }

// PackTaps lays out w (o output channels of c input channels of nt taps,
// PyTorch's [O, C, KH, KW] with nt = KH·KW) for ConvTaps. It panics if w
// is shorter than o·c·nt or a size is not positive.
func PackTaps(w []int8, o, c, nt int) *TapFilter {
	if o < 1 || c < 1 || nt < 1 || c*nt > MaxK {
		panic(fmt.Sprintf("qgemm: PackTaps of %d×%d×%d: sizes must be ≥ 1 and c·taps ≤ %d", o, c, nt, MaxK))
	}
	if len(w) < o*c*nt {
		panic(fmt.Sprintf("qgemm: PackTaps of %d×%d×%d: w has %d values, want %d", o, c, nt, len(w), o*c*nt))
	}
	cg := (c + 3) / 4
	f := &TapFilter{o: o, c: c, cg: cg, nt: nt, data: make([]int8, nt*cg*4*o), rowSum: make([]int32, o)}
	// Balanced tiles: 25 channels as 13 and 12 rather than 15 and 10, so
	// that no tile is left with too few sums in flight.
	nTiles := (o + tapsMaxR - 1) / tapsMaxR
	off := 0
	for i, o0 := 0, 0; i < nTiles; i++ {
		r := (o - o0) / (nTiles - i)
		if (o-o0)%(nTiles-i) != 0 {
			r++
		}
		f.tiles = append(f.tiles, tapTile{o0: o0, r: r, off: off})
		for j := 0; j < r; j++ {
			for ci := 0; ci < c; ci++ {
				for t := 0; t < nt; t++ {
					v := w[((o0+j)*c+ci)*nt+t]
					f.data[off+((t*cg+ci/4)*r+j)*4+ci%4] = v
					f.rowSum[o0+j] += int32(v)
				}
			}
		}
		off += nt * cg * r * 4
		o0 += r
	}
	return f
}

// O is the number of output channels.
func (f *TapFilter) O() int { return f.o }

// Groups is the number of 4-channel groups of the input layout, C/4
// rounded up.
func (f *TapFilter) Groups() int { return f.cg }

// RowSums returns each output channel's weight sum (not a copy).
func (f *TapFilter) RowSums() []int32 { return f.rowSum }

// ConvTaps computes a convolution's exact int32 sums vectorized over
// output positions. a holds the input codes laid out [C/4][gs][4]: the 4
// channels of a group at one position in consecutive bytes (channels past
// C: any codes, their weights are zero), groups gs positions apart. Tap t
// of output position p reads input position p + off[t]; then
//
//	c[j·ldc + p] = Σ_t Σ_ch a[((ch/4)·gs + p + off[t])·4 + ch%4] · w[j][ch][t]
//
// for every output channel j and p < positions rounded up to TapBlock
// (which a must hold: the extra positions' sums are computed too). A
// stride-1 convolution over an image padded to width wp has off[t] =
// ki·wp + kj and output pixel (i, j) at p = i·wp + j. The sums are exact
// (wrapping in int32 like MatMul's), the same on every implementation.
//
// ConvTaps panics if the slices are too short or the offsets negative.
// It allocates nothing in steady state.
func ConvTaps(positions int, a []uint8, gs int, off []int, f *TapFilter, c []int32, ldc int) {
	if positions < 1 {
		return
	}
	p := roundUp(positions, TapBlock)
	maxOff := 0
	for _, v := range off {
		if v < 0 {
			panic(fmt.Sprintf("qgemm: ConvTaps: negative tap offset %d", v))
		}
		maxOff = max(maxOff, v)
	}
	switch {
	case len(off) != f.nt:
		panic(fmt.Sprintf("qgemm: ConvTaps: %d tap offsets for a filter of %d taps", len(off), f.nt))
	case gs < 1 || ldc < p:
		panic(fmt.Sprintf("qgemm: ConvTaps: gs %d must be ≥ 1 and ldc %d ≥ %d positions", gs, ldc, p))
	case len(c) < (f.o-1)*ldc+p:
		panic(fmt.Sprintf("qgemm: ConvTaps: c has %d values, want %d", len(c), (f.o-1)*ldc+p))
	case len(a) < ((f.cg-1)*gs+p+maxOff)*4:
		panic(fmt.Sprintf("qgemm: ConvTaps: a has %d codes, want %d", len(a), ((f.cg-1)*gs+p+maxOff)*4))
	}
	im := active.Load()
	ws := wsPool.Get().(*workspace)
	defer wsPool.Put(ws)
	bo := growInt(&ws.taps, f.nt)
	for t, v := range off {
		bo[t] = 4 * v
	}
	for _, tl := range f.tiles {
		im.taps(tl.r)(p/TapBlock, &a[0], 4*gs, f.cg, &bo[0], f.nt, &f.data[tl.off], &c[tl.o0*ldc], ldc)
	}
}

// tapsFunc is a taps tile (asm/gen.go's tapsKernel): nb blocks of 32
// positions, A groups gs bytes apart, taps byte offsets, b the tile's
// weights, C's rows ldc int32s apart.
type tapsFunc func(nb int, a *uint8, gs int, cg int, taps *int, nt int, b *int8, c *int32, ldc int)

// tapsGo is tapsFunc in Go for r output channels.
func tapsGo(r int) tapsFunc {
	return func(nb int, a *uint8, gs int, cg int, taps *int, nt int, b *int8, c *int32, ldc int) {
		p := nb * TapBlock
		offs := unsafe.Slice(taps, nt)
		ws := unsafe.Slice(b, nt*cg*r*4)
		maxOff := 0
		for _, v := range offs {
			maxOff = max(maxOff, v)
		}
		as := unsafe.Slice(a, (cg-1)*gs+maxOff+4*p)
		cs := unsafe.Slice(c, (r-1)*ldc+p)
		for j := 0; j < r; j++ {
			row := cs[j*ldc : j*ldc+p]
			clear(row)
			for t, to := range offs {
				for g := 0; g < cg; g++ {
					w := ws[((t*cg+g)*r+j)*4:]
					w0, w1, w2, w3 := int32(w[0]), int32(w[1]), int32(w[2]), int32(w[3])
					src := as[g*gs+to : g*gs+to+4*p]
					for i := range row {
						q := src[4*i : 4*i+4]
						row[i] += int32(q[0])*w0 + int32(q[1])*w1 + int32(q[2])*w2 + int32(q[3])*w3
					}
				}
			}
		}
	}
}

var goTaps = func() [tapsMaxR + 1]tapsFunc {
	var fs [tapsMaxR + 1]tapsFunc
	for r := 1; r <= tapsMaxR; r++ {
		fs[r] = tapsGo(r)
	}
	return fs
}()

func tapsGoPick(r int) tapsFunc { return goTaps[r] }

// TapsFast reports whether ConvTaps runs on vector kernels (AVX-512 VNNI);
// without them it runs in Go, slower than MatMul's AVX2 tiles.
func TapsFast() bool { return active.Load().fastTaps }

// QuantizeGroup writes the codes of 4 channels of n positions interleaved,
// q[4i+ch] = the code of x_ch[i] with p's parameters (QuantizeWith's
// rule, the same bits), the layout ConvTaps reads. A group with fewer
// than 4 channels can pass any of them again for the missing ones.
func QuantizeGroup(n int, x0, x1, x2, x3 []float32, p Params, r Range, q []uint8) {
	switch {
	case n < 0:
		panic(fmt.Sprintf("qgemm: QuantizeGroup of %d: negative size", n))
	case !r.valid():
		panic(fmt.Sprintf("qgemm: QuantizeGroup: range %d is neither Full nor Reduced", r))
	case len(x0) < n || len(x1) < n || len(x2) < n || len(x3) < n || len(q) < 4*n:
		panic(fmt.Sprintf("qgemm: QuantizeGroup of %d: x has %d, %d, %d, %d values and q %d, want %d and %d", n, len(x0), len(x1), len(x2), len(x3), len(q), n, 4*n))
	}
	if n == 0 {
		return
	}
	active.Load().quantizeGroup(n, [4][]float32{x0, x1, x2, x3}, q, 1/p.Scale, p.ZeroPoint, int32(r))
}

func quantizeGroupGo(n int, x [4][]float32, q []uint8, inv float32, zp, qmax int32) {
	for i := 0; i < n; i++ {
		for ch := range x {
			q[4*i+ch] = uint8(code(x[ch][i], inv, zp, qmax))
		}
	}
}

// NewTapsEpilogue is NewEpilogue for a TapFilter's sums.
func NewTapsEpilogue(a Params, f *TapFilter, wScale, bias []float32) *Epilogue {
	checkConstants("NewTapsEpilogue", f.o, wScale, bias)
	e := &Epilogue{n: f.o, zc: make([]int32, f.o), mult: make([]float32, f.o), bias: make([]float32, f.o)}
	constants(e.zc, e.mult, a, f.rowSum, wScale)
	copy(e.bias, bias)
	return e
}

func growInt(buf *[]int, n int) []int {
	if cap(*buf) < n {
		*buf = make([]int, n)
	}
	return (*buf)[:n]
}
