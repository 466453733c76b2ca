package gemm

import (
	"sync"
	"unsafe"
)

// problem holds the arguments of one Sgemm call after validation, with
// m, n, k ≥ 1 and alpha ≠ 0.
type problem struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
}

// solve picks the path for the whole product. Every choice here depends
// only on the shape and the implementation, never on the thread count, so
// each element of C is computed by the same sequence of operations
// whatever the split.
// gemv computes a product whose C is one row or one column, as a
// matrix-vector product, and says whether it did: packing would copy as much
// data as such a product reads, so it is streamed instead.
func (p *problem) gemv() bool {
	im := active.Load()
	switch {
	case p.m == 1 && !p.transB:
		// C row = xᵀ·B, B k×n.
		x, incX := p.rowOfA()
		sgemv(im, true, p.k, p.n, p.alpha, p.b, p.ldb, x, incX, p.beta, p.c, 1)
	case p.m == 1:
		// C row = B·x, B stored n×k.
		x, incX := p.rowOfA()
		sgemv(im, false, p.n, p.k, p.alpha, p.b, p.ldb, x, incX, p.beta, p.c, 1)
	case p.n == 1 && !p.transA:
		// C column = A·x, A m×k.
		x, incX := p.colOfB()
		sgemv(im, false, p.m, p.k, p.alpha, p.a, p.lda, x, incX, p.beta, p.c, p.ldc)
	case p.n == 1:
		// C column = Aᵀ·x, A stored k×m.
		x, incX := p.colOfB()
		sgemv(im, true, p.k, p.m, p.alpha, p.a, p.lda, x, incX, p.beta, p.c, p.ldc)
	default:
		return false
	}
	return true
}

// solve computes a matrix-matrix product (gemv took the others).
func (p *problem) solve() {
	im := active.Load()
	kern := im.pick(p.n)
	kc := kBlock(p.k, im.kc)
	if sp := p.split(kern); sp.parts > 1 {
		runParallel(p, im, kern, kc, sp)
		return
	}
	ws := getWorkspace(kern, kc, p.m, p.n)
	p.block(ws, im, kern, kc, 0, p.m, 0, p.n)
	putWorkspace(ws)
}

// rowOfA returns op(A)'s only row as a strided vector.
func (p *problem) rowOfA() ([]float32, int) {
	if p.transA {
		return p.a, p.lda
	}
	return p.a, 1
}

// colOfB returns op(B)'s only column as a strided vector.
func (p *problem) colOfB() ([]float32, int) {
	if p.transB {
		return p.b, 1
	}
	return p.b, p.ldb
}

// kBlock splits k into equal blocks of at most max (rounded up to a
// multiple of 4, the kernels' unroll): k = 784 with max 256 gives four
// blocks of 196, not three of 256 and a 16-deep one that pays a full pass
// over C for little work.
func kBlock(k, max int) int {
	nb := (k + max - 1) / max
	kc := (k + nb - 1) / nb
	return (kc + 3) &^ 3
}

// block computes rows [i0,i1) and columns [j0,j1) of C, the BLIS loop
// nest: columns of B in nc panels, k in kc blocks (B packed once per
// block), rows of A in mc blocks, then the nr-wide slivers of packed B
// and the mr-row slivers of A that the kernel consumes.
//
// The kernels read A row-strided, so a non-transposed A is used in place
// (only a ragged last sliver of rows is copied, zero-padded); a transposed
// A is transposed into the workspace one mc×kc block at a time. Ragged
// tiles compute padding rows and columns too, but never store them.
func (p *problem) block(ws *workspace, im *impl, kern *tileKernel, kcBlk, i0, i1, j0, j1 int) {
	mr, nr := kern.mr, kern.nr
	for jc := j0; jc < j1; jc += kern.nc {
		nc := min(kern.nc, j1-jc)
		for pc := 0; pc < p.k; pc += kcBlk {
			kc := min(kcBlk, p.k-pc)
			// Later k blocks add onto what the first one wrote.
			beta := p.beta
			if pc > 0 {
				beta = 1
			}
			packB(im, ws.b, p.b, p.ldb, p.transB, pc, kc, jc, nc, nr)
			rsp := packedStride(kc)
			for ic := i0; ic < i1; ic += kern.mc {
				mc := min(kern.mc, i1-ic)
				// a0 holds the block's rows at stride rsa from offset 0.
				var a0 []float32
				var rsa int
				if p.transA {
					packAT(im, ws.a, p.a, p.lda, ic, mc, roundUp(mc, mr), pc, kc, rsp)
					a0, rsa = ws.a, rsp
				} else {
					a0, rsa = p.a[ic*p.lda+pc:], p.lda
				}
				if tail := mc % mr; tail != 0 && !p.transA {
					// Rows past m must not be read: copy the last sliver.
					packARows(ws.tail, p.a[(ic+mc-tail)*p.lda+pc:], p.lda, tail, kc, rsp, mr)
				}
				for jr := 0; jr < nc; jr += nr {
					bs := &ws.b[jr*kc]
					cols := min(nr, nc-jr)
					for ir := 0; ir < mc; ir += mr {
						rows := min(mr, mc-ir)
						as, rs := &a0[ir*rsa], rsa
						if rows < mr && !p.transA {
							as, rs = &ws.tail[0], rsp
						}
						ci := (ic+ir)*p.ldc + jc + jr
						if rows == mr && cols == nr {
							kern.fn(kc, as, rs, bs, &p.c[ci], p.ldc, p.alpha, beta, mr, kern.fullMask)
						} else {
							p.edge(ws, kern, kc, as, rs, bs, ci, rows, cols, beta)
						}
					}
				}
			}
		}
	}
}

// packedStride is the row stride of A packed at depth kc: a multiple of
// 16 floats (whole cache lines) plus one line, so that the rows of a
// sliver do not all map to the same few L1 sets.
func packedStride(kc int) int { return roundUp(kc, 16) + 16 }

// edge computes a partial tile. Kernels that mask their stores write C in
// place; the others compute a full tile in scratch, with the same
// arithmetic, and only the valid part is copied.
func (p *problem) edge(ws *workspace, kern *tileKernel, kc int, a *float32, rsa int, b *float32, ci, rows, cols int, beta float32) {
	if kern.masked {
		kern.fn(kc, a, rsa, b, &p.c[ci], p.ldc, p.alpha, beta, rows, 1<<cols-1)
		return
	}
	nr := kern.nr
	t := ws.tile[:kern.mr*nr]
	if beta != 0 {
		for i := 0; i < rows; i++ {
			src := p.c[ci+i*p.ldc : ci+i*p.ldc+cols]
			dst := t[i*nr : i*nr+cols]
			for j, v := range src {
				dst[j] = v
			}
		}
	}
	kern.fn(kc, a, rsa, b, &t[0], nr, p.alpha, beta, kern.mr, kern.fullMask)
	for i := 0; i < rows; i++ {
		src := t[i*nr : i*nr+cols]
		dst := p.c[ci+i*p.ldc : ci+i*p.ldc+cols]
		for j, v := range src {
			dst[j] = v
		}
	}
}

// packARows copies rows×kc of A (row stride lda) to dst at row stride rs
// and zero-fills the rows up to mr.
func packARows(dst, a []float32, lda, rows, kc, rs, mr int) {
	for r := 0; r < rows; r++ {
		copy(dst[r*rs:r*rs+kc], a[r*lda:r*lda+kc])
	}
	for r := rows; r < mr; r++ {
		clear(dst[r*rs : r*rs+kc])
	}
}

// packAT packs op(A)[i0:i0+valid, p0:p0+kc] for a transposed A
// (op(A)[i][p] = a[p*lda+i]) into dst at row stride rs, i.e. it transposes
// the block, and zeroes the rows from valid up to padded. dst must have
// room for roundUp(padded, 8) rows.
func packAT(im *impl, dst, a []float32, lda, i0, valid, padded, p0, kc, rs int) {
	q := 0 // k steps done for all rows
	if im.transpose8 != nil {
		// 8 k steps × 8·n rows per call. Rounding the rows up to 8 reads
		// a few values past the block, which land in padding rows that
		// are cleared below; only the very end of a must not be passed.
		i8 := roundUp(valid, 8)
		for ; q+8 <= kc && (p0+q+7)*lda+i0+i8 <= len(a); q += 8 {
			im.transpose8(i8/8, &a[(p0+q)*lda+i0], lda, &dst[q], rs)
		}
	}
	for ; q < kc; q++ {
		row := a[(p0+q)*lda+i0 : (p0+q)*lda+i0+valid]
		for i, v := range row {
			dst[i*rs+q] = v
		}
	}
	for i := valid; i < padded; i++ {
		clear(dst[i*rs : i*rs+kc])
	}
}

// packB copies op(B)[p0:p0+kc, j0:j0+nc] into dst as nr-column slivers,
// each stored k-major (nr values per k step). Columns past nc hold zeros or
// B's neighbouring values: they only feed lanes of C that are not stored.
func packB(im *impl, dst, b []float32, ldb int, trans bool, p0, kc, j0, nc, nr int) {
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		d := dst[jr*kc : jr*kc+nr*kc]
		if !trans {
			// op(B)[p][j] = b[p*ldb+j]: each k step is a contiguous run.
			src := b[p0*ldb+j0+jr:]
			if cols == nr {
				im.copyRuns(d, src, kc, nr, ldb)
				continue
			}
			// Copy whole nr-wide runs while they stay inside b: the values
			// past the last column are B's neighbouring data, and only
			// reach lanes of C that are never stored (see block). The
			// last rows of b get element loops and zeros.
			q := 0
			if nb := len(src) - nr; nb >= 0 {
				q = min(kc, nb/ldb+1)
				im.copyRuns(d, src, q, nr, ldb)
			}
			for ; q < kc; q++ {
				dd := d[q*nr : q*nr+nr]
				ss := src[q*ldb : q*ldb+cols]
				for j, v := range ss {
					dd[j] = v
				}
				for j := cols; j < nr; j++ {
					dd[j] = 0
				}
			}
			continue
		}
		// op(B)[p][j] = b[j*ldb+p]: B's rows are op(B)'s columns, so the
		// sliver is a transpose, 8 columns × 8 k steps at a time.
		c8 := 0
		if im.transpose8 != nil && kc >= 8 {
			c8 = cols &^ 7
			for g := 0; g < c8; g += 8 {
				im.transpose8(kc/8, &b[(j0+jr+g)*ldb+p0], ldb, &d[g], nr)
			}
		}
		for c := 0; c < cols; c++ {
			q0 := 0
			if c < c8 {
				q0 = kc &^ 7 // the transposes did the rest
				if q0 == kc {
					continue
				}
			}
			src := b[(j0+jr+c)*ldb+p0+q0 : (j0+jr+c)*ldb+p0+kc]
			dd := d[q0*nr+c:]
			for q, v := range src {
				dd[q*nr] = v
			}
		}
		for c := cols; c < nr; c++ {
			for q := 0; q < kc; q++ {
				d[q*nr+c] = 0
			}
		}
	}
}

// copyRunsGo copies kc runs of w floats, ldb apart in src, to consecutive
// runs in dst (impl.copyRuns without asm).
func copyRunsGo(dst, src []float32, kc, w, ldb int) {
	for q := 0; q < kc; q++ {
		copy(dst[q*w:q*w+w], src[q*ldb:q*ldb+w])
	}
}

// workspace holds one goroutine's packing buffers. Buffers only grow, and
// workspaces are recycled through a sync.Pool, so steady-state calls
// allocate nothing.
type workspace struct {
	a, b, tile []float32
	tail       []float32 // a ragged last sliver of a non-transposed A
	toff       []int     // Taps: the offsets of each tap's copy in tail
	x, y       []float32 // gemv scratch for strided vectors
	abuf, bbuf []float32 // backing arrays of a and b, before alignment
}

var wsPool = sync.Pool{New: func() any { return new(workspace) }}

// getWorkspace returns a workspace with room for kern's blocks at depth kc
// for a block of C of m×n.
func getWorkspace(kern *tileKernel, kc, m, n int) *workspace {
	ws := wsPool.Get().(*workspace)
	rs := packedStride(kc)
	ws.a = grow(&ws.abuf, roundUp(min(kern.mc, roundUp(m, kern.mr)), 8)*rs)
	ws.b = grow(&ws.bbuf, min(kern.nc, roundUp(n, kern.nr))*kc)
	if len(ws.tile) < kern.mr*kern.nr {
		ws.tile = make([]float32, kern.mr*kern.nr)
	}
	if len(ws.tail) < kern.mr*rs {
		ws.tail = make([]float32, kern.mr*rs)
	}
	return ws
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }

func putWorkspace(ws *workspace) { wsPool.Put(ws) }

// grow returns a 64-byte aligned slice of n floats backed by *buf,
// reallocating *buf if it is too small. Alignment keeps every packed
// vector load within one cache line.
func grow(buf *[]float32, n int) []float32 {
	const align = 16 // floats
	if cap(*buf) < n+align {
		*buf = make([]float32, n+align)
	}
	s := (*buf)[:cap(*buf)]
	off := int(uintptr(unsafe.Pointer(&s[0]))/4) & (align - 1)
	if off != 0 {
		off = align - off
	}
	return s[off : off+n]
}
