package gemm

// Products for convolutions computed without im2col. A stride-1 convolution
// over an image laid out with its padding is a sum over the kernel's taps
// of products whose operands are the same image shifted by a constant
// offset per tap: the patches never need to be written out. Both functions
// run on the calling goroutine with this package's kernels (never the
// OpenBLAS backend), like SgemmSerial, and give the same bits whichever
// kernel family of one implementation runs them (AVX2 or AVX-512).

// Taps computes C = alpha·Σ_t A_t·B_t + beta·C for t < len(off): A_t is the
// m×k matrix at a[off[t]:] with row stride lda, B_t is rows t·k to
// (t+1)·k of B, a (len(off)·k)×n row-major matrix with row stride ldb, and
// C is m×n with row stride ldc. It is the product of [A_0 … A_T-1] (m ×
// T·k) and B when the A_t are column blocks of one matrix, but the blocks
// may overlap anywhere in a: a convolution's A_t are one image (pixels as
// rows, channels as columns) shifted by each tap's offset.
//
// Each element is summed tap by tap, in order; the taps are grouped into
// blocks of at most the kernels' k block (kBlock's rule over taps), and the
// blocks are added to C one after the other as Sgemm adds its k blocks. The
// asm kernels sum a block's taps in one accumulator chain (tileKernel.taps);
// the pure-Go kernel, which never matches their bits anyway, adds each tap's
// product to C in turn.
func Taps(m, n, k int, off []int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	taps := len(off)
	checkTaps(m, n, k, off, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 || taps == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	im := active.Load()
	kern := im.pickTaps(n)
	mr, nr := kern.mr, kern.nr
	// Taps per block, as kBlock splits k: equal blocks of at most kc.
	blocks := (taps*k + im.kc - 1) / im.kc
	per := (taps + blocks - 1) / blocks
	ws := getWorkspace(kern, per*k, m, n)
	defer putWorkspace(ws)
	rsp := packedStride(k)
	if len(ws.tail) < per*mr*rsp {
		ws.tail = make([]float32, per*mr*rsp)
	}
	// The copied last rows of each tap sit mr·rsp apart. Rewritten on every
	// call: a pooled workspace may hold offsets of another kernel's tiles.
	ws.toff = ws.toff[:0]
	for t := 0; t < per; t++ {
		ws.toff = append(ws.toff, t*mr*rsp)
	}
	p := problem{m: m, n: n, k: k, alpha: alpha, beta: beta, c: c, ldc: ldc}
	for jc := 0; jc < n; jc += kern.nc {
		nc := min(kern.nc, n-jc)
		for t0 := 0; t0 < taps; t0 += per {
			t1 := min(taps, t0+per)
			kc := (t1 - t0) * k
			packB(im, ws.b, b, ldb, false, t0*k, kc, jc, nc, nr)
			for ir := 0; ir < m; ir += mr {
				rows := min(mr, m-ir)
				if rows < mr {
					// Rows past m must not be read: copy each tap's last rows.
					for t := t0; t < t1; t++ {
						packARows(ws.tail[(t-t0)*mr*rsp:], a[off[t]+ir*lda:], lda, rows, k, rsp, mr)
					}
				}
				for jr := 0; jr < nc; jr += nr {
					cols := min(nr, nc-jr)
					ci := ir*ldc + jc + jr
					if kern.taps != nil {
						tb := beta
						if t0 > 0 {
							tb = 1
						}
						as, rs, offs := &a[ir*lda], lda, &off[t0]
						if rows < mr {
							as, rs, offs = &ws.tail[0], rsp, &ws.toff[0]
						}
						bs := &ws.b[jr*kc]
						if (rows == mr && cols == nr) || kern.masked {
							mask := kern.fullMask
							if cols < nr {
								mask = 1<<cols - 1
							}
							kern.taps(t1-t0, offs, k, as, rs, bs, &c[ci], ldc, alpha, tb, rows, mask)
						} else {
							tapsEdge(ws, kern, t1-t0, offs, k, as, rs, bs, c[ci:], ldc, rows, cols, alpha, tb)
						}
						continue
					}
					for t := t0; t < t1; t++ {
						bt := t0 == 0 && t == 0
						tb := float32(1)
						if bt {
							tb = beta
						}
						as, rs := &a[off[t]+ir*lda], lda
						if rows < mr {
							as, rs = &ws.tail[(t-t0)*mr*rsp], rsp
						}
						bs := &ws.b[jr*kc+(t-t0)*k*nr]
						if rows == mr && cols == nr {
							kern.fn(k, as, rs, bs, &c[ci], ldc, alpha, tb, mr, kern.fullMask)
						} else {
							p.edge(ws, kern, k, as, rs, bs, ci, rows, cols, tb)
						}
					}
				}
			}
		}
	}
}

// tapsEdge computes a partial tile with a kernel that stores whole tiles:
// into scratch (with C's values when beta ≠ 0), then the valid part.
func tapsEdge(ws *workspace, kern *tileKernel, taps int, offs *int, k int, a *float32, rsa int, b *float32, c []float32, ldc, rows, cols int, alpha, beta float32) {
	nr := kern.nr
	t := ws.tile[:kern.mr*nr]
	if beta != 0 {
		for i := 0; i < rows; i++ {
			copy(t[i*nr:i*nr+cols], c[i*ldc:i*ldc+cols])
		}
	}
	kern.taps(taps, offs, k, a, rsa, b, &t[0], nr, alpha, beta, kern.mr, kern.fullMask)
	for i := 0; i < rows; i++ {
		copy(c[i*ldc:i*ldc+cols], t[i*nr:i*nr+cols])
	}
}

func checkTaps(m, n, k int, off []int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	checkDims(false, false, m, n, k, lda, ldb, ldc)
	if m == 0 || n == 0 || k == 0 || len(off) == 0 {
		return
	}
	for _, o := range off {
		if o < 0 || len(a) < o+(m-1)*lda+k {
			panic(errShortA)
		}
	}
	if len(b) < (len(off)*k-1)*ldb+n {
		panic(errShortB)
	}
	if len(c) < (m-1)*ldc+n {
		panic(errShortC)
	}
}

// ShiftedA computes C_t = alpha·A_t·op(B) + beta·C_t for t < len(off): A_t
// is the m×k matrix at a[off[t]:] with row stride lda, op(B) is k×n (Bᵀ
// stored n×k when transB), and C_t is rows t·m to (t+1)·m of C, a
// (len(off)·m)×n matrix with row stride ldc. B is packed once for all t: a
// convolution's weight gradient per tap, with A_t the input shifted by the
// tap's offset and B the output gradient. Each C_t gets Sgemm's bits for
// its own product.
func ShiftedA(m, n, k int, off []int, alpha float32, a []float32, lda int, transB bool, b []float32, ldb int, beta float32, c []float32, ldc int) {
	taps := len(off)
	for _, o := range off {
		checkSgemm(false, transB, m, n, k, a[o:], lda, b, ldb, c, ldc)
	}
	if taps > 0 && m > 0 && n > 0 {
		checkSgemm(false, transB, m, n, k, a, lda, b, ldb, c[(taps-1)*m*ldc:], ldc)
	}
	if m == 0 || n == 0 || taps == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scaleC(taps*m, n, beta, c, ldc)
		return
	}
	im := active.Load()
	kern := im.pickRows(n, m)
	mr, nr := kern.mr, kern.nr
	kcBlk := kBlock(k, im.kc)
	ws := getWorkspace(kern, kcBlk, m, n)
	defer putWorkspace(ws)
	rsp := packedStride(kcBlk)
	p := problem{m: m, n: n, k: k, alpha: alpha, beta: beta, c: c, ldc: ldc}
	for jc := 0; jc < n; jc += kern.nc {
		nc := min(kern.nc, n-jc)
		for pc := 0; pc < k; pc += kcBlk {
			kc := min(kcBlk, k-pc)
			tb := beta
			if pc > 0 {
				tb = 1
			}
			packB(im, ws.b, b, ldb, transB, pc, kc, jc, nc, nr)
			for t, o := range off {
				for ir := 0; ir < m; ir += mr {
					rows := min(mr, m-ir)
					as, rs := &a[o+ir*lda+pc], lda
					if rows < mr {
						packARows(ws.tail, a[o+ir*lda+pc:], lda, rows, kc, rsp, mr)
						as, rs = &ws.tail[0], rsp
					}
					for jr := 0; jr < nc; jr += nr {
						cols := min(nr, nc-jr)
						ci := (t*m+ir)*ldc + jc + jr
						bs := &ws.b[jr*kc]
						if rows == mr && cols == nr {
							kern.fn(kc, as, rs, bs, &c[ci], ldc, alpha, tb, mr, kern.fullMask)
						} else {
							p.edge(ws, kern, kc, as, rs, bs, ci, rows, cols, tb)
						}
					}
				}
			}
		}
	}
}

// Transpose writes dst[j*ldd+i] = src[i*lds+j] for i < m, j < n: the layout
// changes around the convolution products (channels-first planes to
// pixel rows of channels and back), 8×8 blocks at a time with AVX2.
func Transpose(m, n int, src []float32, lds int, dst []float32, ldd int) {
	if m == 0 || n == 0 {
		return
	}
	if lds < n || ldd < m || len(src) < (m-1)*lds+n || len(dst) < (n-1)*ldd+m {
		panic("gemm: Transpose: operands too short for their shape")
	}
	im := active.Load()
	if im.transpose8 != nil && m >= 8 && n >= 8 {
		// Ragged edges as one more 8×8 block overlapping the last whole
		// one: the overlap is written twice with the same values, and the
		// edges (28 pixels = 3·8 + 4, ResNet's image widths) stay vectorized.
		n8 := n / 8
		for i := 0; ; i += 8 {
			i = min(i, m-8)
			im.transpose8(n8, &src[i*lds], lds, &dst[i], ldd)
			if n%8 != 0 {
				im.transpose8(1, &src[i*lds+n-8], lds, &dst[(n-8)*ldd+i], ldd)
			}
			if i == m-8 {
				return
			}
		}
	}
	for i := 0; i < m; i++ {
		row := src[i*lds : i*lds+n]
		for j, v := range row {
			dst[j*ldd+i] = v
		}
	}
}

// pickTaps is the tile for a convolution of n output channels: of the
// wide and narrow kernels, the one that pads n to fewer columns (ties go
// to the wide one, as pick's). A structurally pruned network's widths
// waste lanes of the wide tile: 42 output channels fill 48 columns of
// three 16-wide tiles but 64 of two 32-wide ones. Every kernel of the
// family gives the same bits, so the choice changes only the speed.
func (im *impl) pickTaps(n int) *tileKernel {
	if im.narrow != nil && roundUp(n, im.narrow.nr) < roundUp(n, im.wide.nr) {
		return im.narrow
	}
	return im.wide
}
