//go:build ignore

// Command gen writes the amd64 micro-kernels of package gemm with avo.
//
// Run it through `go generate ./internal/gemm` (see the directive in
// gemm.go); it writes kernel_amd64.s and kernel_stubs_amd64.go.
//
// Every GEMM kernel computes one MR×NR tile of C from MR rows of A, read
// in place with a row stride, and a packed sliver of B (NR values per k
// step):
//
//	acc[i][j] = Σ_p a[i*rsa+p] * b[p*NR+j]   (one FMA per p, in p order)
//	C[i][j]   = alpha*acc[i][j] + beta*C[i][j]   (C is not read if beta == 0)
//
// The sum over p is a chain of FMAs in increasing p for every element, so
// the result of an element does not depend on where its tile sits, which
// kernel computed it (AVX2 or AVX-512, any tile shape), or which goroutine
// ran it. BenchmarkTiles in the package compares the tile shapes.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// unroll is the number of k steps per iteration of the main loop. Four
// keeps loop overhead (2 ADDQ, SUBQ, JCC) under 5% of the issue slots while
// the loop body still fits easily in the op cache.
const unroll = 4

func main() {
	// The pure-Go kernels replace these under the purego tag.
	ConstraintExpr("!purego")

	// AVX2 + FMA: 16 ymm registers. 6×16 uses 12 accumulators, 2 for the B
	// row and 2 for alternating A broadcasts, and measured fastest (about
	// 10% over 4×24, which has 12 accumulators, 3 B and 1 broadcast).
	gemmKernel("gemmAVX2x6x16", 6, 2, false, false)
	gemmKernel("gemmAVX2x4x24", 4, 3, false, false)
	// Narrow tile for products with n ≤ 8 (a conv layer with 6 output
	// channels): 12 accumulators of one ymm each.
	gemmKernel("gemmAVX2x12x8", 12, 1, false, false)

	// AVX-512F: 32 zmm registers of 16 floats. 12×32 (24 accumulators)
	// measured best overall; 14×32 and 8×48 are within a few percent.
	// 24×16 serves n ≤ 16 (LeNet-5's convolutions, the 10-way output).
	gemmKernel("gemmAVX512x12x32", 12, 2, true, false)
	gemmKernel("gemmAVX512x14x32", 14, 2, true, false)
	gemmKernel("gemmAVX512x8x48", 8, 3, true, false)
	gemmKernel("gemmAVX512x24x16", 24, 1, true, false)
	// Shorter tiles of the same widths for products with a few rows that
	// 24 and 12 do not divide (a convolution's weight gradient per tap has
	// one row per input channel: 16, 32, 64).
	gemmKernel("gemmAVX512x16x16", 16, 1, true, false)
	gemmKernel("gemmAVX512x8x32", 8, 2, true, false)

	// The same tiles summing over a convolution's taps (gemm.Taps): one
	// k loop per tap, A's rows at a per-tap offset, the accumulators kept.
	gemmKernel("tapsAVX2x6x16", 6, 2, false, true)
	gemmKernel("tapsAVX2x12x8", 12, 1, false, true)
	gemmKernel("tapsAVX512x12x32", 12, 2, true, true)
	gemmKernel("tapsAVX512x24x16", 24, 1, true, true)

	// Matrix-vector products (memory-bound, so AVX2 serves both families).
	for _, nv := range []int{8, 4, 2, 1} {
		gemvTKernel(nv)
	}
	gemvNKernel(4)
	gemvNKernel(1)
	transposeKernel()
	copyRunsKernel()

	Generate()
}

// gemmKernel emits a GEMM micro-kernel for a tile of mr rows and nv
// vectors per row:
//
//	func(k int, a *float32, rsa int, b, c *float32, ldc int, alpha, beta float32)
//
// and, for AVX-512, two more arguments (rows int, mask uint64) that limit
// the store to the first rows rows and to the columns whose bit is set in
// mask, so ragged edges of C are written in place.
//
// A is read row-strided: element (i, p) of the tile's A at a[i*rsa+p].
// That is A itself when it is not transposed (no packing), or a block
// packed row by row. B is a packed sliver, nr values per k step.
//
// With taps, the kernel takes two more leading arguments (taps int, offs
// *int) and sums taps·k steps: for tap t, element (i, p) of A is at
// a[offs[t]+i*rsa+p], and B's sliver continues (taps·k steps in all). The
// sum is still one FMA chain per element, tap by tap.
func gemmKernel(name string, mr, nv int, avx512, taps bool) {
	lanes, vbytes := 8, 32
	vec := func(i int) VecPhysical { return ymm[i] }
	if avx512 {
		lanes, vbytes = 16, 64
		vec = func(i int) VecPhysical { return zmm[i] }
	}
	nr := nv * lanes
	nacc := mr * nv
	nregs := 16
	if avx512 {
		nregs = 32
	}
	// Accumulators first, then the B row, then one or two broadcast
	// registers: with two, consecutive rows' broadcasts do not wait for the
	// previous row's FMAs to release the register.
	nbc := min(2, nregs-nacc-nv)
	if nbc < 1 {
		panic(fmt.Sprintf("%s: %d accumulators + %d B registers leave no broadcast register", name, nacc, nv))
	}
	acc := func(i, v int) VecPhysical { return vec(i*nv + v) }
	breg := func(v int) VecPhysical { return vec(nacc + v) }
	bc := []VecPhysical{vec(nacc + nv), vec(nacc + nv + nbc - 1)}

	sig := "func(k int, a *float32, rsa int, b, c *float32, ldc int, alpha, beta float32)"
	if avx512 {
		sig = "func(k int, a *float32, rsa int, b, c *float32, ldc int, alpha, beta float32, rows int, mask uint64)"
	}
	if taps {
		sig = "func(taps int, offs *int, " + sig[len("func("):]
	}
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	doc := []string{
		fmt.Sprintf("%s computes a %d×%d tile: C = alpha*A·B + beta*C (C unread if beta == 0).", name, mr, nr),
		"A's rows are rsa elements apart; b is a packed sliver of k steps; ldc is C's row stride.",
	}
	if taps {
		doc = []string{
			fmt.Sprintf("%s computes a %d×%d tile: C = alpha*Σ_t A_t·B_t + beta*C (C unread if beta == 0),", name, mr, nr),
			"A_t at a+offs[t] with rows rsa elements apart, k steps each; b is a packed sliver of taps·k steps.",
		}
	}
	if avx512 {
		doc = append(doc, "Only the first rows rows and the columns set in mask are read or written.")
	}
	Doc(doc...)

	var k, c, ldc Register
	if !taps {
		k = Load(Param("k"), GP64())
	}
	rs := Load(Param("rsa"), GP64())
	b := Load(Param("b"), GP64())
	if !taps {
		c = Load(Param("c"), GP64())
		ldc = Load(Param("ldc"), GP64())
		SHLQ(U8(2), ldc) // elements → bytes
	}
	SHLQ(U8(2), rs)
	rs3 := GP64()
	LEAQ(Mem{Base: rs, Index: rs, Scale: 2}, rs3)
	// Row i of A is at base[i/5] + (i%5)*rs: x86 addressing reaches rows
	// 0..4 from one base with index rs (scale 1, 2, 4) or 3·rs (scale 1).
	var bases []Register
	setBases := func() {
		for j := range bases {
			if j > 0 {
				LEAQ(Mem{Base: bases[j-1], Index: rs, Scale: 4}, bases[j])
				ADDQ(rs, bases[j])
			}
		}
	}
	for i := 0; i < mr; i += 5 {
		r := GP64()
		if i == 0 {
			if !taps {
				Load(Param("a"), r)
			}
		} else if !taps {
			LEAQ(Mem{Base: bases[len(bases)-1], Index: rs, Scale: 4}, r)
			ADDQ(rs, r)
		}
		bases = append(bases, r)
	}
	rowAddr := func(i, disp int) Mem {
		base := bases[i/5]
		switch i % 5 {
		case 0:
			return Mem{Base: base, Disp: disp}
		case 1:
			return Mem{Base: base, Index: rs, Scale: 1, Disp: disp}
		case 2:
			return Mem{Base: base, Index: rs, Scale: 2, Disp: disp}
		case 3:
			return Mem{Base: base, Index: rs3, Scale: 1, Disp: disp}
		default:
			return Mem{Base: base, Index: rs, Scale: 4, Disp: disp}
		}
	}

	// Warm the C tile while the k loop runs: it is read (beta ≠ 0) or
	// written at the end, and rows are ldc apart so no prefetcher guesses them.
	cp := GP64()
	pldc := ldc
	if taps {
		Load(Param("c"), cp)
		pldc = Load(Param("ldc"), GP64())
		SHLQ(U8(2), pldc)
	} else {
		MOVQ(c, cp)
	}
	for i := 0; i < mr; i++ {
		for off := 0; off < nr*4; off += 64 {
			PREFETCHT0(Mem{Base: cp, Disp: off})
		}
		if i < mr-1 {
			ADDQ(pldc, cp)
		}
	}

	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			r := acc(i, v)
			if avx512 {
				VPXORD(r, r, r) // VXORPS on zmm would need AVX512DQ
			} else {
				VXORPS(r, r, r)
			}
		}
	}

	// step emits the k step at A offset 4u bytes and B offset boff bytes.
	step := func(u, boff int) {
		for v := 0; v < nv; v++ {
			VMOVUPS(Mem{Base: b, Disp: boff + v*vbytes}, breg(v))
		}
		for i := 0; i < mr; i++ {
			if avx512 && nv == 1 {
				// One FMA per A value: broadcast it from memory inside
				// the FMA. A separate VBROADCASTSS costs Zen 4 an FP
				// pipe slot per FMA (the 24×16 taps kernel ran at 73% of
				// 12×32's speed); the product is the same, so the bits are.
				VFMADD231PS_BCST(rowAddr(i, 4*u), breg(0), acc(i, 0))
				continue
			}
			t := bc[i%nbc]
			VBROADCASTSS(rowAddr(i, 4*u), t)
			for v := 0; v < nv; v++ {
				VFMADD231PS(breg(v), t, acc(i, v))
			}
		}
	}
	advance := func(steps int) {
		for _, r := range bases {
			ADDQ(U8(4*steps), r)
		}
		ADDQ(U32(steps*nr*4), b)
	}

	var nt, offp Register
	if taps {
		nt = Load(Param("taps"), GP64())
		offp = Load(Param("offs"), GP64())
		Label(name + "_tap")
		// This tap's rows: a + offs[t] elements.
		Load(Param("a"), bases[0])
		off := GP64()
		MOVQ(Mem{Base: offp}, off)
		LEAQ(Mem{Base: bases[0], Index: off, Scale: 4}, bases[0])
		setBases()
		k = Load(Param("k"), GP64())
	}
	after := name + "_epilogue"
	if taps {
		after = name + "_tapnext"
	}

	Label(name + "_loop4")
	CMPQ(k, U8(unroll))
	JL(LabelRef(name + "_tail"))
	for u := 0; u < unroll; u++ {
		step(u, u*nr*4)
	}
	advance(unroll)
	SUBQ(U8(unroll), k)
	JMP(LabelRef(name + "_loop4"))

	Label(name + "_tail")
	TESTQ(k, k)
	JZ(LabelRef(after))
	step(0, 0)
	advance(1)
	DECQ(k)
	JMP(LabelRef(name + "_tail"))

	if taps {
		Label(name + "_tapnext")
		ADDQ(U8(8), offp)
		DECQ(nt)
		JNZ(LabelRef(name + "_tap"))
		c = Load(Param("c"), GP64())
		ldc = Load(Param("ldc"), GP64())
		SHLQ(U8(2), ldc)
	}

	Label(name + "_epilogue")
	// The B and broadcast registers are free after the loop.
	alpha := breg(0)
	VBROADCASTSS(paramAddr("alpha"), alpha)
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			VMULPS(alpha, acc(i, v), acc(i, v))
		}
	}
	beta := bc[0]
	VBROADCASTSS(paramAddr("beta"), beta)
	// beta == ±0 means "overwrite": C may hold NaN or Inf that must not
	// leak, so C is not read at all.
	betaBits := GP32()
	MOVL(paramAddr("beta"), betaBits)
	ANDL(U32(0x7fffffff), betaBits)

	if avx512 {
		rows := Load(Param("rows"), GP64())
		mask := GP64()
		Load(Param("mask"), mask)
		full := GP64()
		MOVQ(U64(uint64(1)<<nr-1), full)
		CMPQ(mask, full)
		JNE(LabelRef(name + "_partial"))
		CMPQ(rows, U8(mr))
		JNE(LabelRef(name + "_partial"))
		fullEpilogue(name, mr, nv, vbytes, c, ldc, acc, beta, betaBits)

		// Ragged tile: one opmask per vector of the row, then row by row
		// masked loads (beta ≠ 0) and stores until rows run out.
		Label(name + "_partial")
		kmask := []Op{K1, K2, K3, K4}[:nv]
		for v := 0; v < nv; v++ {
			KMOVW(mask.As32(), kmask[v])
			if v < nv-1 {
				SHRQ(U8(16), mask)
			}
		}
		for pass, label := range []string{"_pb0", "_pb1"} {
			Label(name + label)
			if pass == 0 {
				TESTL(betaBits, betaBits)
				JZ(LabelRef(name + "_pb1"))
			}
			for i := 0; i < mr; i++ {
				for v := 0; v < nv; v++ {
					if pass == 0 {
						VFMADD231PS(Mem{Base: c, Disp: v * vbytes}, beta, kmask[v], acc(i, v))
					}
					VMOVUPS(acc(i, v), kmask[v], Mem{Base: c, Disp: v * vbytes})
				}
				if i < mr-1 {
					DECQ(rows)
					JZ(LabelRef(name + "_done"))
					ADDQ(ldc, c)
				}
			}
			JMP(LabelRef(name + "_done"))
		}
		Label(name + "_done")
		VZEROUPPER()
		RET()
		return
	}
	fullEpilogue(name, mr, nv, vbytes, c, ldc, acc, beta, betaBits)
}

// fullEpilogue stores a whole tile: acc += beta*C unless betaBits (beta
// without its sign) is zero, then C = acc. It returns from the function.
func fullEpilogue(name string, mr, nv, vbytes int, c, ldc Register, acc func(i, v int) VecPhysical, beta VecPhysical, betaBits Register) {
	cp := GP64()
	TESTL(betaBits, betaBits)
	JZ(LabelRef(name + "_store"))
	MOVQ(c, cp)
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			VFMADD231PS(Mem{Base: cp, Disp: v * vbytes}, beta, acc(i, v))
		}
		if i < mr-1 {
			ADDQ(ldc, cp)
		}
	}
	Label(name + "_store")
	MOVQ(c, cp)
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			VMOVUPS(acc(i, v), Mem{Base: cp, Disp: v * vbytes})
		}
		if i < mr-1 {
			ADDQ(ldc, cp)
		}
	}
	VZEROUPPER()
	RET()
}

// transposeKernel emits transpose8AVX2, the packing primitive for operands
// stored the other way round: it transposes an 8×(8·n) block, src row r
// (stride lds elements) column q going to dst[q*ldd + r].
func transposeKernel() {
	TEXT("transpose8AVX2", NOSPLIT, "func(n int, src *float32, lds int, dst *float32, ldd int)")
	Pragma("noescape")
	Doc("transpose8AVX2 writes dst[q*ldd+r] = src[r*lds+q] for r < 8, q < 8n.")
	n := Load(Param("n"), GP64())
	src := Load(Param("src"), GP64())
	lds := Load(Param("lds"), GP64())
	dst := Load(Param("dst"), GP64())
	ldd := Load(Param("ldd"), GP64())
	SHLQ(U8(2), lds)
	SHLQ(U8(2), ldd)
	lds3, ldd3 := GP64(), GP64()
	LEAQ(Mem{Base: lds, Index: lds, Scale: 2}, lds3)
	LEAQ(Mem{Base: ldd, Index: ldd, Scale: 2}, ldd3)
	src4, dst4 := GP64(), GP64()
	r := ymm[:8]
	t := ymm[8:16]
	// Row/column q of a group of four, from a base and the strides.
	addr := func(base, ld, ld3 Register, q int) Mem {
		switch q {
		case 0:
			return Mem{Base: base}
		case 1:
			return Mem{Base: base, Index: ld, Scale: 1}
		case 2:
			return Mem{Base: base, Index: ld, Scale: 2}
		default:
			return Mem{Base: base, Index: ld3, Scale: 1}
		}
	}
	Label("transpose8_loop")
	TESTQ(n, n)
	JZ(LabelRef("transpose8_done"))
	LEAQ(Mem{Base: src, Index: lds, Scale: 4}, src4)
	for i := 0; i < 8; i++ {
		base := src
		if i >= 4 {
			base = src4
		}
		VMOVUPS(addr(base, lds, lds3, i%4), r[i])
	}
	// Interleave pairs of rows, then pairs of pairs, then swap 128-bit
	// halves: 24 shuffles for 64 elements.
	for i := 0; i < 8; i += 2 {
		VUNPCKLPS(r[i+1], r[i], t[i])
		VUNPCKHPS(r[i+1], r[i], t[i+1])
	}
	for _, g := range []int{0, 4} {
		VSHUFPS(U8(0x44), t[g+2], t[g], r[g])
		VSHUFPS(U8(0xEE), t[g+2], t[g], r[g+1])
		VSHUFPS(U8(0x44), t[g+3], t[g+1], r[g+2])
		VSHUFPS(U8(0xEE), t[g+3], t[g+1], r[g+3])
	}
	for q := 0; q < 4; q++ {
		VPERM2F128(U8(0x20), r[q+4], r[q], t[q])
		VPERM2F128(U8(0x31), r[q+4], r[q], t[q+4])
	}
	LEAQ(Mem{Base: dst, Index: ldd, Scale: 4}, dst4)
	for q := 0; q < 8; q++ {
		base := dst
		if q >= 4 {
			base = dst4
		}
		VMOVUPS(t[q], addr(base, ldd, ldd3, q%4))
	}
	ADDQ(U8(32), src)
	LEAQ(Mem{Base: dst4, Index: ldd, Scale: 4}, dst)
	DECQ(n)
	JMP(LabelRef("transpose8_loop"))
	Label("transpose8_done")
	VZEROUPPER()
	RET()
}

// gemvTKernel emits gemvTAVX2x<8·nv>, which computes 8·nv consecutive
// elements of y = alpha*Bᵀx + beta*y for a row-major B with k rows:
//
//	y[j] = alpha * Σ_p x[p]*b[p*ldb+j] + beta*y[j]
//
// as one FMA chain per element in increasing p, like the GEMM kernels.
func gemvTKernel(nv int) {
	w := 8 * nv
	name := fmt.Sprintf("gemvTAVX2x%d", w)
	TEXT(name, NOSPLIT, "func(k int, x, b *float32, ldb int, y *float32, alpha, beta float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes y[j] = alpha*Σ_p x[p]*b[p*ldb+j] + beta*y[j] for j < %d.", name, w))
	k := Load(Param("k"), GP64())
	x := Load(Param("x"), GP64())
	b := Load(Param("b"), GP64())
	ldb := Load(Param("ldb"), GP64())
	y := Load(Param("y"), GP64())
	SHLQ(U8(2), ldb)
	for v := 0; v < nv; v++ {
		VXORPS(ymm[v], ymm[v], ymm[v])
	}
	// Two broadcast registers, alternating between k steps, so a step's
	// broadcast need not wait for the previous step's FMAs to issue.
	bc := []VecPhysical{Y14, Y15}
	Label(name + "_loop2")
	CMPQ(k, U8(2))
	JL(LabelRef(name + "_tail"))
	for u := 0; u < 2; u++ {
		VBROADCASTSS(Mem{Base: x, Disp: 4 * u}, bc[u])
		for v := 0; v < nv; v++ {
			VFMADD231PS(Mem{Base: b, Disp: 32 * v}, bc[u], ymm[v])
		}
		ADDQ(ldb, b)
	}
	ADDQ(U8(8), x)
	SUBQ(U8(2), k)
	JMP(LabelRef(name + "_loop2"))
	Label(name + "_tail")
	TESTQ(k, k)
	JZ(LabelRef(name + "_epilogue"))
	VBROADCASTSS(Mem{Base: x}, bc[0])
	for v := 0; v < nv; v++ {
		VFMADD231PS(Mem{Base: b, Disp: 32 * v}, bc[0], ymm[v])
	}

	Label(name + "_epilogue")
	VBROADCASTSS(paramAddr("alpha"), Y14)
	for v := 0; v < nv; v++ {
		VMULPS(Y14, ymm[v], ymm[v])
	}
	betaBits := GP32()
	MOVL(paramAddr("beta"), betaBits)
	ANDL(U32(0x7fffffff), betaBits)
	JZ(LabelRef(name + "_store"))
	VBROADCASTSS(paramAddr("beta"), Y15)
	for v := 0; v < nv; v++ {
		VFMADD231PS(Mem{Base: y, Disp: 32 * v}, Y15, ymm[v])
	}
	Label(name + "_store")
	for v := 0; v < nv; v++ {
		VMOVUPS(ymm[v], Mem{Base: y, Disp: 32 * v})
	}
	VZEROUPPER()
	RET()
}

// gemvNKernel emits gemvNAVX2x<rows>, which computes rows consecutive
// elements of y = alpha*A·x + beta*y for a row-major A with k columns:
//
//	y[i] = alpha * dot(a[i*lda:i*lda+k], x) + beta*y[i]
//
// Each dot product keeps 16 lane sums (p mod 16, two ymm), then adds the
// scalar sum of the last k mod 16 products; the lane sums are reduced in
// a fixed tree, so the order is fixed for a given k.
func gemvNKernel(rows int) {
	name := fmt.Sprintf("gemvNAVX2x%d", rows)
	TEXT(name, NOSPLIT, "func(k int, a *float32, lda int, x, y *float32, alpha, beta float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes y[i] = alpha*dot(a[i*lda:i*lda+k], x) + beta*y[i] for i < %d.", name, rows))
	k := Load(Param("k"), GP64())
	a := Load(Param("a"), GP64())
	lda := Load(Param("lda"), GP64())
	x := Load(Param("x"), GP64())
	y := Load(Param("y"), GP64())
	SHLQ(U8(2), lda)
	// Row pointers: A's rows advance together with x.
	rp := []Register{a}
	for r := 1; r < rows; r++ {
		p := GP64()
		LEAQ(Mem{Base: rp[r-1], Index: lda, Scale: 1}, p)
		rp = append(rp, p)
	}
	acc := func(r, h int) VecPhysical { return ymm[2*r+h] }
	xv := []VecPhysical{ymm[2*rows], ymm[2*rows+1]}
	tail := func(r int) VecPhysical { return xmm[2*rows+2+r] }
	for r := 0; r < rows; r++ {
		VXORPS(acc(r, 0), acc(r, 0), acc(r, 0))
		VXORPS(acc(r, 1), acc(r, 1), acc(r, 1))
		VXORPS(tail(r), tail(r), tail(r))
	}
	Label(name + "_loop16")
	CMPQ(k, U8(16))
	JL(LabelRef(name + "_tail"))
	VMOVUPS(Mem{Base: x}, xv[0])
	VMOVUPS(Mem{Base: x, Disp: 32}, xv[1])
	for r := 0; r < rows; r++ {
		VFMADD231PS(Mem{Base: rp[r]}, xv[0], acc(r, 0))
		VFMADD231PS(Mem{Base: rp[r], Disp: 32}, xv[1], acc(r, 1))
		ADDQ(U8(64), rp[r])
	}
	ADDQ(U8(64), x)
	SUBQ(U8(16), k)
	JMP(LabelRef(name + "_loop16"))

	Label(name + "_tail")
	TESTQ(k, k)
	JZ(LabelRef(name + "_reduce"))
	VMOVSS(Mem{Base: x}, xv[0].AsX())
	for r := 0; r < rows; r++ {
		VFMADD231SS(Mem{Base: rp[r]}, xv[0].AsX(), tail(r))
		ADDQ(U8(4), rp[r])
	}
	ADDQ(U8(4), x)
	DECQ(k)
	JMP(LabelRef(name + "_tail"))

	Label(name + "_reduce")
	t := X15
	for r := 0; r < rows; r++ {
		s := acc(r, 0)
		VADDPS(acc(r, 1), s, s)
		VEXTRACTF128(U8(1), s, t)
		VADDPS(t, s.AsX(), s.AsX()) // 4 sums
		VMOVHLPS(s.AsX(), s.AsX(), t)
		VADDPS(t, s.AsX(), s.AsX()) // 2 sums
		VMOVSHDUP(s.AsX(), t)
		VADDSS(t, s.AsX(), s.AsX())       // 1 sum
		VADDSS(tail(r), s.AsX(), s.AsX()) // + the last k mod 16 products
	}
	alpha, beta := xv[0].AsX(), xv[1].AsX()
	VMOVSS(paramAddr("alpha"), alpha)
	for r := 0; r < rows; r++ {
		VMULSS(alpha, acc(r, 0).AsX(), acc(r, 0).AsX())
	}
	betaBits := GP32()
	MOVL(paramAddr("beta"), betaBits)
	ANDL(U32(0x7fffffff), betaBits)
	JZ(LabelRef(name + "_store"))
	VMOVSS(paramAddr("beta"), beta)
	for r := 0; r < rows; r++ {
		VFMADD231SS(Mem{Base: y, Disp: 4 * r}, beta, acc(r, 0).AsX())
	}
	Label(name + "_store")
	for r := 0; r < rows; r++ {
		VMOVSS(acc(r, 0).AsX(), Mem{Base: y, Disp: 4 * r})
	}
	VZEROUPPER()
	RET()
}

// copyRunsKernel emits copyRunsAVX2, the packing of B slivers stored the
// right way round: kc runs of w floats (w a multiple of 8), lds apart in
// src, to consecutive runs in dst. Go would call memmove for each run.
func copyRunsKernel() {
	TEXT("copyRunsAVX2", NOSPLIT, "func(kc int, src *float32, lds int, dst *float32, w int)")
	Pragma("noescape")
	Doc("copyRunsAVX2 copies dst[q*w+j] = src[q*lds+j] for q < kc, j < w (w a multiple of 8).")
	kc := Load(Param("kc"), GP64())
	src := Load(Param("src"), GP64())
	lds := Load(Param("lds"), GP64())
	dst := Load(Param("dst"), GP64())
	w := Load(Param("w"), GP64())
	SHLQ(U8(2), lds)
	SHLQ(U8(2), w) // bytes per run
	off := GP64()
	Label("copyruns_row")
	TESTQ(kc, kc)
	JZ(LabelRef("copyruns_done"))
	XORQ(off, off)
	Label("copyruns_chunk")
	VMOVUPS(Mem{Base: src, Index: off, Scale: 1}, Y0)
	VMOVUPS(Y0, Mem{Base: dst, Index: off, Scale: 1})
	ADDQ(U8(32), off)
	CMPQ(off, w)
	JL(LabelRef("copyruns_chunk"))
	ADDQ(lds, src)
	ADDQ(w, dst)
	DECQ(kc)
	JMP(LabelRef("copyruns_row"))
	Label("copyruns_done")
	VZEROUPPER()
	RET()
}

// paramAddr is the stack address of a scalar argument, for instructions
// that read it directly instead of through a (virtual) register.
func paramAddr(name string) Mem {
	p, err := Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	return p.Addr
}

var xmm = []VecPhysical{X0, X1, X2, X3, X4, X5, X6, X7, X8, X9, X10, X11, X12, X13, X14, X15}

var ymm = []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}

var zmm = []VecPhysical{
	Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
	Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31,
}
