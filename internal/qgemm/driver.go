package qgemm

import (
	"sync"
	"unsafe"
)

// Blocking. B is packed once for all k, so only k and m are blocked: a
// kcMax-deep sliver pair of B (32 columns × 1024 bytes) stays in L1 while
// an mc×kc block of A streams past it from L2. Integer sums are exact, so
// the blocks change nothing in the result.
const (
	kcMax = 1024
	mc    = 120
)

// matmul is MatMul after validation (m, n, k ≥ 1): the BLIS loop nest,
// k blocks, then blocks of rows, then tiles of columns (B slivers, from
// L1) by tiles of rows.
//
// A is read in place, the kernels reading whole 4-byte k groups: past k,
// up to 3 bytes of the row's padding or the next row, which meet B's zero
// padding and add nothing. Only where that would read past the end of a,
// and for a ragged last tile of rows (whose missing rows must not be
// read), the tile's rows are copied into a zero-padded buffer. Tiles that
// read A as int16 (AVX2, 8-bit) get each block widened into a buffer.
//
// add makes every k block accumulate into C, the first one too.
func matmul(im *impl, m int, a []uint8, lda int, r Range, b *Packed, c []int32, ldc int, add bool) {
	t := im.pick(m, b.n, r)
	n, k, kp := b.n, b.k, b.kp
	nb := (kp + kcMax - 1) / kcMax
	kcBlk := roundUp((kp+nb-1)/nb, 4)
	// Rows that can be read kp bytes deep inside a.
	safe := 0
	if len(a) >= kp {
		safe = min(m, (len(a)-kp)/lda+1)
	}
	ws := wsPool.Get().(*workspace)
	defer wsPool.Put(ws)
	for pc := 0; pc < kp; pc += kcBlk {
		kc := min(kcBlk, kp-pc)
		kg := kc / 4
		accum := 0
		if pc > 0 || add {
			accum = 1
		}
		for ic := 0; ic < m; ic += mc {
			mcur := min(mc, m-ic)
			var wide []int16
			rsw := 0 // row stride of wide, in int16s
			if t.wideA {
				// One cache line more than kc, so rows do not share L1 sets.
				rsw = roundUp(kc, 32) + 32
				wide = growInt16(&ws.wide, roundUp(mcur, t.mr)*rsw)
				kv := min(kc, k-pc) // A's values in this block; the rest are zeros
				for i := 0; i < roundUp(mcur, t.mr); i++ {
					dst := wide[i*rsw : i*rsw+kc]
					if i < mcur {
						widen(dst[:kv], a[(ic+i)*lda+pc:(ic+i)*lda+pc+kv])
						clear(dst[kv:])
					} else {
						clear(dst)
					}
				}
			}
			for jr := 0; jr < n; jr += t.nr {
				cols := min(t.nr, n-jr)
				bp := &b.data[(jr/16)*b.sliver+(pc/4)*64+(jr%16)*4]
				for ir := 0; ir < mcur; ir += t.mr {
					rows := min(t.mr, mcur-ir)
					i := ic + ir
					var ap unsafe.Pointer
					ld := lda
					switch {
					case t.wideA:
						ap, ld = unsafe.Pointer(&wide[ir*rsw]), 2*rsw
					case rows == t.mr && i+rows <= safe:
						ap = unsafe.Pointer(&a[i*lda+pc])
					default:
						ap, ld = unsafe.Pointer(ws.tailRows(a, lda, k, i, rows, t.mr, pc, kc)), kc
					}
					ci := i*ldc + jr
					if t.masked || (rows == t.mr && cols == t.nr) {
						t.fn(kg, ap, ld, bp, b.sliver, &c[ci], ldc, accum, rows, colMask(cols))
						continue
					}
					ws.edge(t, kg, ap, ld, bp, b.sliver, c[ci:], ldc, accum, rows, cols)
				}
			}
		}
	}
}

// colMask has the low cols bits set.
func colMask(cols int) uint64 {
	if cols >= 64 {
		return ^uint64(0)
	}
	return 1<<cols - 1
}

// workspace holds one call's buffers; they only grow, and a sync.Pool
// recycles them, so steady-state calls allocate nothing.
type workspace struct {
	tail []uint8   // a tile's rows of A, zero-padded
	wide []int16   // a block of A widened to int16
	tile []int32   // a ragged tile's full result
	zc   []int32   // Dequantize: zero-point corrections
	mult []float32 // Dequantize: per-column multipliers
	zero []float32 // Dequantize: the bias when there is none
	taps []int     // ConvTaps: the taps' byte offsets
}

var wsPool = sync.Pool{New: func() any { return new(workspace) }}

// tailRows copies rows i..i+rows-1 of A, k values [pc, pc+kc) of each
// (fewer where the row ends at k), into a buffer of mr rows of kc bytes,
// zero-filling the rest, and returns its start.
func (ws *workspace) tailRows(a []uint8, lda, k, i, rows, mr, pc, kc int) *uint8 {
	buf := growUint8(&ws.tail, mr*kc)
	kv := min(kc, k-pc)
	for r := 0; r < mr; r++ {
		dst := buf[r*kc : r*kc+kc]
		if r < rows {
			copy(dst, a[(i+r)*lda+pc:(i+r)*lda+pc+kv])
			clear(dst[kv:])
		} else {
			clear(dst)
		}
	}
	return &buf[0]
}

// edge computes a ragged tile with a kernel that stores whole tiles: into
// scratch (seeded with C when accumulating), then the valid part to C.
func (ws *workspace) edge(t *tile, kg int, a unsafe.Pointer, lda int, b *int8, bs int, c []int32, ldc, accum, rows, cols int) {
	nr := t.nr
	s := growInt32(&ws.tile, t.mr*nr)
	if accum != 0 {
		for r := 0; r < rows; r++ {
			copy(s[r*nr:r*nr+cols], c[r*ldc:r*ldc+cols])
		}
	}
	t.fn(kg, a, lda, b, bs, &s[0], nr, accum, t.mr, colMask(nr))
	for r := 0; r < rows; r++ {
		copy(c[r*ldc:r*ldc+cols], s[r*nr:r*nr+cols])
	}
}

func growUint8(buf *[]uint8, n int) []uint8 {
	if cap(*buf) < n {
		*buf = make([]uint8, n)
	}
	return (*buf)[:n]
}

func growInt16(buf *[]int16, n int) []int16 {
	if cap(*buf) < n {
		*buf = make([]int16, n)
	}
	return (*buf)[:n]
}

func growInt32(buf *[]int32, n int) []int32 {
	if cap(*buf) < n {
		*buf = make([]int32, n)
	}
	return (*buf)[:n]
}

func growFloat32(buf *[]float32, n int) []float32 {
	if cap(*buf) < n {
		*buf = make([]float32, n)
	}
	return (*buf)[:n]
}
