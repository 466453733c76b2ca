//go:build ignore

// Command gen writes the amd64 kernels of package qgemm with avo.
//
// Run it through `go generate ./internal/qgemm` (see the directive in
// qgemm.go); it writes kernel_amd64.s and kernel_stubs_amd64.go.
//
// Every product kernel computes one MR×NR tile of C (int32) from MR rows
// of A (uint8 activations) and packed B (int8 weights): B is stored in
// slivers of 16 output columns, each a run of 4-deep k groups of 64 bytes
// (column j's 4 weights of group g at g*64 + 4*j), so that one 32-bit lane
// holds the four k steps a dot-product instruction sums:
//
//	C[i][j] (+)= Σ_p a[i*lda+p] * b_j[p]   exactly, in int32
//
// Integer sums are exact, so unlike the float kernels the order of the
// additions does not matter: the kernels may split a sum over several
// accumulators and every path still gives the same bits.
//
// Three product routes:
//
//   - VNNI (AVX-512): VPDPBUSD multiplies 4 unsigned by 4 signed bytes and
//     adds the four products to an int32 lane, without saturation.
//   - AVX2, 7-bit activations (0..127): VPMADDUBSW forms int16 pair sums,
//     at most 127*127*2 = 32258 in magnitude (127*-128*2 = -32512), so it
//     cannot saturate; VPMADDWD with ones widens the pairs to int32.
//   - AVX2, 8-bit activations: VPMADDUBSW would saturate (255*127*2 >
//     32767), so both operands are widened to int16 (A once per block by
//     the driver, B on the fly with VPMOVSXBW) and VPMADDWD, exact in
//     int32, forms the pair sums.
//
// Avo 0.5 does not know VPDPBUSD (AVX512_VNNI); the Go assembler does, so
// it is emitted as a raw instruction with explicit operands.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/gotypes"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// unroll is the number of k groups (4 k steps each) per iteration of the
// main loops.
const unroll = 4

func main() {
	ConstraintExpr("!purego")

	// VNNI tiles: 32 zmm registers. mr×(16·nv) with mr·nv accumulators,
	// nv B registers and two broadcast registers. BenchmarkTiles compares
	// them; see kernel_amd64.go for the choice.
	vnniKernel("qgemmVNNI12x32", 12, 2, 1)
	vnniKernel("qgemmVNNI8x48", 8, 3, 1)
	vnniKernel("qgemmVNNI6x64", 6, 4, 1)
	vnniKernel("qgemmVNNI24x16", 24, 1, 1)
	vnniKernel("qgemmVNNI4x64", 4, 4, 1)
	// One row (batch-1 inference): each B value is used once, so it is
	// read straight into VPDPBUSD; three accumulator sets, rotating over
	// the k groups, keep 12 independent sums in flight.
	vnniKernel("qgemmVNNI1x64", 1, 4, 3)

	// AVX2 with 7-bit activations: 16 ymm registers.
	avx2U7Kernel("qgemmAVX2U7x4x16", 4, false)
	avx2U7Kernel("qgemmAVX2U7x5x16", 5, false)
	avx2U7Kernel("qgemmAVX2U7x6x16", 6, true)
	avx2U7Kernel("qgemmAVX2U7x1x16", 1, false)

	// AVX2 with 8-bit activations, A widened to int16.
	avx2U8Kernel("qgemmAVX2U8x6x8", 6, 2)
	avx2U8Kernel("qgemmAVX2U8x4x8", 4, 2)
	avx2U8Kernel("qgemmAVX2U8x2x16", 2, 4)
	avx2U8Kernel("qgemmAVX2U8x1x16", 1, 4)

	// Convolution taps vectorized over output positions (VNNI): tiles of
	// r output channels by 32 positions, one kernel per r.
	for r := 1; r <= tapsMaxR; r++ {
		tapsKernel(r)
	}

	widenKernel()
	minMaxKernel()
	quantizeKernel()
	quantizeGroupKernel()
	dequantKernel()
	planeOutKernel()

	Generate()
}

// vpdpbusd emits VPDPBUSD (Go operand order): acc += Σ4 u8(a) * s8(b),
// per 32-bit lane, with b a register or a 64-byte memory operand.
func vpdpbusd(b Op, a, acc VecPhysical) {
	Instruction(&ir.Instruction{
		Opcode:   "VPDPBUSD",
		Operands: []Op{b, a, acc},
		Inputs:   []Op{b, a, acc},
		Outputs:  []Op{acc},
		ISA:      []string{"AVX512_VNNI"},
	})
}

// rowAddresser returns the address of byte disp of row i of A, for rows
// rs bytes apart: x86 addressing reaches rows 0..4 from one base with
// index rs (scale 1, 2, 4) or 3·rs (scale 1), so there is one base
// register per five rows.
func rowAddresser(mr int, a gotypes.Component, rs Register) func(i, disp int) Mem {
	rs3 := GP64()
	LEAQ(Mem{Base: rs, Index: rs, Scale: 2}, rs3)
	var bases []Register
	for i := 0; i < mr; i += 5 {
		r := GP64()
		if i == 0 {
			Load(a, r)
		} else {
			LEAQ(Mem{Base: bases[len(bases)-1], Index: rs, Scale: 4}, r)
			ADDQ(rs, r)
		}
		bases = append(bases, r)
	}
	return func(i, disp int) Mem {
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
}

// advanceRows moves every row base by n bytes. It relies on the closure
// from rowAddresser sharing its bases, so it takes them back from addr.
func advanceRows(mr int, addr func(i, disp int) Mem, n int) {
	for i := 0; i < mr; i += 5 {
		ADDQ(U32(n), addr(i, 0).Base)
	}
}

// vnniKernel emits an AVX-512 VNNI tile kernel of mr rows and nv 16-column
// slivers:
//
//	func(kg int, a *uint8, lda int, b *int8, bs int, c *int32, ldc int, accum int, rows int, mask uint64)
//
// kg is the number of 4-byte k groups, a the tile's first A row at the
// block's first k (rows lda bytes apart), b the first sliver at the same
// k (the others bs bytes apart), c the tile of C (rows ldc int32s apart).
// accum ≠ 0 adds C's values to the sums. Only the first rows rows and the
// columns whose bit is set in mask are read or written, so ragged tiles
// are stored in place.
//
// sets > 1 splits each sum over that many accumulators, k group g going
// to set g mod sets, added together before the store: for one row, where
// nv chains alone would wait on VPDPBUSD's latency.
func vnniKernel(name string, mr, nv, sets int) {
	nacc := sets * mr * nv
	foldB := mr == 1 // each B vector is used once: read it inside VPDPBUSD
	nb := nv
	if foldB {
		nb = 0
	}
	if nacc+nb+2 > 32 {
		panic(name + ": too many registers")
	}
	acc := func(s, i, v int) VecPhysical { return zmm[(s*mr+i)*nv+v] }
	breg := func(v int) VecPhysical { return zmm[nacc+v] }
	bc := []VecPhysical{zmm[nacc+nb], zmm[nacc+nb+1]}

	TEXT(name, NOSPLIT, "func(kg int, a *uint8, lda int, b *int8, bs int, c *int32, ldc int, accum int, rows int, mask uint64)")
	Pragma("noescape")
	Doc(
		fmt.Sprintf("%s computes a %d×%d int32 tile of A·Bᵀ over kg groups of 4 k steps (VNNI).", name, mr, 16*nv),
		"A's rows are lda bytes apart; B's slivers bs bytes apart; C's rows ldc int32s apart.",
		"accum ≠ 0 adds C; only the first rows rows and the columns set in mask are read or written.",
	)
	kg := Load(Param("kg"), GP64())
	lda := Load(Param("lda"), GP64())
	b := Load(Param("b"), GP64())
	bs := Load(Param("bs"), GP64())
	var bs3 Register
	if nv > 3 {
		bs3 = GP64()
		LEAQ(Mem{Base: bs, Index: bs, Scale: 2}, bs3)
	}
	row := rowAddresser(mr, Param("a"), lda)
	bAddr := func(v, disp int) Mem {
		switch v {
		case 0:
			return Mem{Base: b, Disp: disp}
		case 1:
			return Mem{Base: b, Index: bs, Scale: 1, Disp: disp}
		case 2:
			return Mem{Base: b, Index: bs, Scale: 2, Disp: disp}
		default:
			return Mem{Base: b, Index: bs3, Scale: 1, Disp: disp}
		}
	}

	for s := 0; s < sets; s++ {
		for i := 0; i < mr; i++ {
			for v := 0; v < nv; v++ {
				r := acc(s, i, v)
				VPXORD(r, r, r)
			}
		}
	}

	// group emits one k group into accumulator set s: A bytes at offset
	// aoff of each row, B at offset boff of each sliver.
	group := func(s, aoff, boff int) {
		if !foldB {
			for v := 0; v < nv; v++ {
				VMOVDQU32(bAddr(v, boff), breg(v))
			}
		}
		for i := 0; i < mr; i++ {
			t := bc[i%2]
			VPBROADCASTD(row(i, aoff), t)
			for v := 0; v < nv; v++ {
				var src Op = breg(v)
				if foldB {
					src = bAddr(v, boff)
				}
				vpdpbusd(src, t, acc(s, i, v))
			}
		}
	}

	Label(name + "_loop")
	CMPQ(kg, U8(unroll))
	JL(LabelRef(name + "_tail"))
	for u := 0; u < unroll; u++ {
		group(u%sets, 4*u, 64*u)
	}
	advanceRows(mr, row, 4*unroll)
	ADDQ(U32(64*unroll), b)
	SUBQ(U8(unroll), kg)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_tail")
	TESTQ(kg, kg)
	JZ(LabelRef(name + "_sum"))
	group(0, 0, 0)
	advanceRows(mr, row, 4)
	ADDQ(U8(64), b)
	DECQ(kg)
	JMP(LabelRef(name + "_tail"))

	Label(name + "_sum")
	for s := 1; s < sets; s++ {
		for i := 0; i < mr; i++ {
			for v := 0; v < nv; v++ {
				VPADDD(acc(s, i, v), acc(0, i, v), acc(0, i, v))
			}
		}
	}

	c := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)
	accum := Load(Param("accum"), GP64())
	rows := Load(Param("rows"), GP64())
	mask := GP64()
	Load(Param("mask"), mask)
	full := GP64()
	if nv == 4 {
		MOVQ(U64(^uint64(0)), full)
	} else {
		MOVQ(U64(uint64(1)<<(16*nv)-1), full)
	}
	CMPQ(mask, full)
	JNE(LabelRef(name + "_partial"))
	CMPQ(rows, U8(mr))
	JNE(LabelRef(name + "_partial"))

	// Whole tile.
	cp := GP64()
	TESTQ(accum, accum)
	JZ(LabelRef(name + "_store"))
	MOVQ(c, cp)
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			VPADDD(Mem{Base: cp, Disp: 64 * v}, acc(0, i, v), acc(0, i, v))
		}
		if i < mr-1 {
			ADDQ(ldc, cp)
		}
	}
	Label(name + "_store")
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			VMOVDQU32(acc(0, i, v), Mem{Base: c, Disp: 64 * v})
		}
		if i < mr-1 {
			ADDQ(ldc, c)
		}
	}
	VZEROUPPER()
	RET()

	// Ragged tile: one opmask per sliver, then row by row masked adds
	// (accum ≠ 0) and stores until rows run out.
	Label(name + "_partial")
	kmask := []Op{K1, K2, K3, K4}[:nv]
	for v := 0; v < nv; v++ {
		KMOVW(mask.As32(), kmask[v])
		if v < nv-1 {
			SHRQ(U8(16), mask)
		}
	}
	for pass, label := range []string{"_pa0", "_pa1"} {
		Label(name + label)
		if pass == 0 {
			TESTQ(accum, accum)
			JZ(LabelRef(name + "_pa1"))
		}
		for i := 0; i < mr; i++ {
			for v := 0; v < nv; v++ {
				if pass == 0 {
					VPADDD(Mem{Base: c, Disp: 64 * v}, acc(0, i, v), kmask[v], acc(0, i, v))
				}
				VMOVDQU32(acc(0, i, v), kmask[v], Mem{Base: c, Disp: 64 * v})
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
}

// avx2U7Kernel emits an AVX2 tile kernel for 7-bit activations, mr rows by
// 16 columns (one sliver):
//
//	func(kg int, a *uint8, lda int, b *int8, c *int32, ldc int, accum int)
//
// It always stores the whole tile (the driver gives ragged tiles a
// scratch tile). With bmem the B vectors are read by each row's
// VPMADDUBSW instead of being held in registers, which frees two
// registers for a sixth row.
func avx2U7Kernel(name string, mr int, bmem bool) {
	nb := 2
	if bmem {
		nb = 0
	}
	acc := func(i, v int) VecPhysical { return ymm[2*i+v] }
	breg := func(v int) VecPhysical { return ymm[2*mr+v] }
	av := ymm[2*mr+nb]
	tmp := ymm[2*mr+nb+1]
	ones := ymm[2*mr+nb+2]
	if 2*mr+nb+3 > 16 {
		panic(name + ": too many registers")
	}

	TEXT(name, NOSPLIT, "func(kg int, a *uint8, lda int, b *int8, c *int32, ldc int, accum int)")
	Pragma("noescape")
	Doc(
		fmt.Sprintf("%s computes a %d×16 int32 tile of A·Bᵀ over kg groups of 4 k steps", name, mr),
		"for activations of at most 127 (AVX2, VPMADDUBSW). A's rows are lda bytes apart, C's ldc int32s.",
		"accum ≠ 0 adds C.",
	)
	kg := Load(Param("kg"), GP64())
	lda := Load(Param("lda"), GP64())
	b := Load(Param("b"), GP64())
	row := rowAddresser(mr, Param("a"), lda)

	for i := 0; i < mr; i++ {
		for v := 0; v < 2; v++ {
			VPXOR(acc(i, v), acc(i, v), acc(i, v))
		}
	}
	// int16 ones: all bits set, shifted right by 15.
	VPCMPEQW(ones, ones, ones)
	VPSRLW(U8(15), ones, ones)

	group := func(aoff, boff int) {
		if !bmem {
			for v := 0; v < 2; v++ {
				VMOVDQU(Mem{Base: b, Disp: boff + 32*v}, breg(v))
			}
		}
		for i := 0; i < mr; i++ {
			VPBROADCASTD(row(i, aoff), av)
			for v := 0; v < 2; v++ {
				var src Op = Mem{Base: b, Disp: boff + 32*v}
				if !bmem {
					src = breg(v)
				}
				VPMADDUBSW(src, av, tmp) // u8(av)·s8(src) pair sums, int16
				VPMADDWD(ones, tmp, tmp) // pairs of pairs, int32
				VPADDD(tmp, acc(i, v), acc(i, v))
			}
		}
	}
	loopTail(name, kg, unroll, func(u int) { group(4*u, 64*u) }, func(n int) {
		advanceRows(mr, row, 4*n)
		ADDQ(U32(64*n), b)
	})
	storeTile(name, mr, 2, func(i, v int) VecPhysical { return acc(i, v) })
}

// avx2U8Kernel emits an AVX2 tile kernel for 8-bit activations, mr rows by
// 4·nw columns:
//
//	func(kg int, a *int16, rsa int, b *int8, c *int32, ldc int, accum int)
//
// A is the driver's int16 copy (rows rsa bytes apart). Per k group each
// 16 bytes of B (4 columns × 4 k) are sign-extended to int16 with
// VPMOVSXBW, and VPMADDWD against A's four values, broadcast, leaves two
// partial sums per column, added in the epilogue with VPHADDD. B's
// groups stay 64 bytes apart (a sliver), so an 8-column tile reads half of
// one; b points at its first column.
func avx2U8Kernel(name string, mr, nw int) {
	acc := func(i, w int) VecPhysical { return ymm[i*nw+w] }
	bw := func(w int) VecPhysical { return ymm[mr*nw+w] }
	av := ymm[mr*nw+nw]
	tmp := ymm[mr*nw+nw+1]
	if mr*nw+nw+2 > 16 {
		panic(name + ": too many registers")
	}
	TEXT(name, NOSPLIT, "func(kg int, a *int16, rsa int, b *int8, c *int32, ldc int, accum int)")
	Pragma("noescape")
	Doc(
		fmt.Sprintf("%s computes a %d×%d int32 tile of A·Bᵀ over kg groups of 4 k steps", name, mr, 4*nw),
		"for 8-bit activations widened to int16 (AVX2, VPMADDWD). A's rows are rsa bytes apart, C's ldc int32s.",
		"accum ≠ 0 adds C.",
	)
	kg := Load(Param("kg"), GP64())
	rsa := Load(Param("rsa"), GP64())
	b := Load(Param("b"), GP64())
	row := rowAddresser(mr, Param("a"), rsa)
	for i := 0; i < mr; i++ {
		for w := 0; w < nw; w++ {
			VPXOR(acc(i, w), acc(i, w), acc(i, w))
		}
	}
	group := func(aoff, boff int) {
		for w := 0; w < nw; w++ {
			VPMOVSXBW(Mem{Base: b, Disp: boff + 16*w}, bw(w))
		}
		for i := 0; i < mr; i++ {
			VPBROADCASTQ(row(i, aoff), av)
			for w := 0; w < nw; w++ {
				VPMADDWD(bw(w), av, tmp)
				VPADDD(tmp, acc(i, w), acc(i, w))
			}
		}
	}
	loopTail(name, kg, unroll, func(u int) { group(8*u, 64*u) }, func(n int) {
		advanceRows(mr, row, 8*n)
		ADDQ(U32(64*n), b)
	})
	// acc(i, w) holds columns 4w..4w+3 as (k0+k1, k2+k3) pairs. VPHADDD of
	// two neighbours gives, per 128-bit lane, [c0 c1 c4 c5 | c2 c3 c6 c7];
	// VPERMQ 0xD8 restores the column order.
	for i := 0; i < mr; i++ {
		for w := 0; w < nw; w += 2 {
			VPHADDD(acc(i, w+1), acc(i, w), acc(i, w))
			VPERMQ(U8(0xD8), acc(i, w), acc(i, w))
		}
	}
	storeTile(name, mr, nw/2, func(i, v int) VecPhysical { return acc(i, 2*v) })
}

// loopTail emits the k-group loop: body(u) for u < unroll then step(unroll)
// while at least unroll groups remain, then body(0), step(1) one at a time.
func loopTail(name string, kg Register, unroll int, body func(u int), step func(n int)) {
	Label(name + "_loop")
	CMPQ(kg, U8(unroll))
	JL(LabelRef(name + "_tail"))
	for u := 0; u < unroll; u++ {
		body(u)
	}
	step(unroll)
	SUBQ(U8(unroll), kg)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_tail")
	TESTQ(kg, kg)
	JZ(LabelRef(name + "_epilogue"))
	body(0)
	step(1)
	DECQ(kg)
	JMP(LabelRef(name + "_tail"))
	Label(name + "_epilogue")
}

// storeTile stores mr rows of nv ymm vectors (acc(i, v)) to C, adding C's
// values first when accum ≠ 0, and returns.
func storeTile(name string, mr, nv int, acc func(i, v int) VecPhysical) {
	c := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)
	accum := Load(Param("accum"), GP64())
	cp := GP64()
	TESTQ(accum, accum)
	JZ(LabelRef(name + "_store"))
	MOVQ(c, cp)
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			VPADDD(Mem{Base: cp, Disp: 32 * v}, acc(i, v), acc(i, v))
		}
		if i < mr-1 {
			ADDQ(ldc, cp)
		}
	}
	Label(name + "_store")
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			VMOVDQU(acc(i, v), Mem{Base: c, Disp: 32 * v})
		}
		if i < mr-1 {
			ADDQ(ldc, c)
		}
	}
	VZEROUPPER()
	RET()
}

// widenKernel emits widenAVX2, the 8-bit path's A packing: n bytes (a
// multiple of 16) zero-extended to int16.
func widenKernel() {
	TEXT("widenAVX2", NOSPLIT, "func(n int, src *uint8, dst *int16)")
	Pragma("noescape")
	Doc("widenAVX2 sets dst[i] = int16(src[i]) for i < n, n a multiple of 16.")
	n := Load(Param("n"), GP64())
	src := Load(Param("src"), GP64())
	dst := Load(Param("dst"), GP64())
	Label("widen_loop32")
	CMPQ(n, U8(32))
	JL(LabelRef("widen_loop16"))
	VPMOVZXBW(Mem{Base: src}, Y0)
	VPMOVZXBW(Mem{Base: src, Disp: 16}, Y1)
	VMOVDQU(Y0, Mem{Base: dst})
	VMOVDQU(Y1, Mem{Base: dst, Disp: 32})
	ADDQ(U8(32), src)
	ADDQ(U8(64), dst)
	SUBQ(U8(32), n)
	JMP(LabelRef("widen_loop32"))
	Label("widen_loop16")
	TESTQ(n, n)
	JZ(LabelRef("widen_done"))
	VPMOVZXBW(Mem{Base: src}, Y0)
	VMOVDQU(Y0, Mem{Base: dst})
	Label("widen_done")
	VZEROUPPER()
	RET()
}

// Element-wise kernels. Each walks m rows (lengths k or n, rows ld
// elements apart): whole vectors first, then the last k mod 8 elements
// through masked loads and stores (VMASKMOVPS, VPMASKMOVD), which neither
// read nor write past the row; tail points at 8 int32 lane masks with the
// first k mod 8 set.

// minMaxKernel emits minMaxAVX2, the range scan of dynamic quantization:
// lo = min(0, x...) and hi = max(0, x...), as Go's `if v < lo { lo = v }`
// computes them: VMINPS with the new value as first source returns the
// second (the running minimum) when either is NaN, so NaN is skipped, and
// lanes start at +0 and so never hold -0. Masked-out lanes load +0, which
// changes neither. Min and max are exact, so the lane-wise split does not
// change the result.
func minMaxKernel() {
	TEXT("minMaxAVX2", NOSPLIT, "func(m, k int, x *float32, ldx int, tail *int32) (lo, hi float32)")
	Pragma("noescape")
	Doc("minMaxAVX2 returns min(0, x...) and max(0, x...) over m rows of k floats ldx apart, skipping NaN.")
	m := Load(Param("m"), GP64())
	x := Load(Param("x"), GP64())
	ldx := Load(Param("ldx"), GP64())
	SHLQ(U8(2), ldx)
	tail := Load(Param("tail"), GP64())
	mask := Y15
	VMOVDQU(Mem{Base: tail}, mask)
	lo := []VecPhysical{Y0, Y1, Y2, Y3}
	hi := []VecPhysical{Y4, Y5, Y6, Y7}
	v := []VecPhysical{Y8, Y9, Y10, Y11}
	for i := 0; i < 4; i++ {
		VXORPS(lo[i], lo[i], lo[i])
		VXORPS(hi[i], hi[i], hi[i])
	}
	n, p := GP64(), GP64()
	Label("minmax_row")
	TESTQ(m, m)
	JZ(LabelRef("minmax_reduce"))
	Load(Param("k"), n)
	MOVQ(x, p)
	Label("minmax_32")
	CMPQ(n, U8(32))
	JL(LabelRef("minmax_8"))
	for i := 0; i < 4; i++ {
		VMOVUPS(Mem{Base: p, Disp: 32 * i}, v[i])
		VMINPS(lo[i], v[i], lo[i]) // v < lo ? v : lo
		VMAXPS(hi[i], v[i], hi[i]) // v > hi ? v : hi
	}
	ADDQ(U8(128), p)
	SUBQ(U8(32), n)
	JMP(LabelRef("minmax_32"))
	Label("minmax_8")
	CMPQ(n, U8(8))
	JL(LabelRef("minmax_tail"))
	VMOVUPS(Mem{Base: p}, v[0])
	VMINPS(lo[0], v[0], lo[0])
	VMAXPS(hi[0], v[0], hi[0])
	ADDQ(U8(32), p)
	SUBQ(U8(8), n)
	JMP(LabelRef("minmax_8"))
	Label("minmax_tail")
	TESTQ(n, n)
	JZ(LabelRef("minmax_next"))
	VMASKMOVPS(Mem{Base: p}, mask, v[0])
	VMINPS(lo[0], v[0], lo[0])
	VMAXPS(hi[0], v[0], hi[0])
	Label("minmax_next")
	ADDQ(ldx, x)
	DECQ(m)
	JMP(LabelRef("minmax_row"))

	Label("minmax_reduce")
	VMINPS(lo[1], lo[0], lo[0])
	VMINPS(lo[3], lo[2], lo[2])
	VMINPS(lo[2], lo[0], lo[0])
	VMAXPS(hi[1], hi[0], hi[0])
	VMAXPS(hi[3], hi[2], hi[2])
	VMAXPS(hi[2], hi[0], hi[0])
	for _, r := range []VecPhysical{Y0, Y4} {
		VEXTRACTF128(U8(1), r, X12)
		if r == Y0 {
			VMINPS(X12, r.AsX(), r.AsX())
			VMOVHLPS(r.AsX(), r.AsX(), X12)
			VMINPS(X12, r.AsX(), r.AsX())
			VMOVSHDUP(r.AsX(), X12)
			VMINSS(X12, r.AsX(), r.AsX())
		} else {
			VMAXPS(X12, r.AsX(), r.AsX())
			VMOVHLPS(r.AsX(), r.AsX(), X12)
			VMAXPS(X12, r.AsX(), r.AsX())
			VMOVSHDUP(r.AsX(), X12)
			VMAXSS(X12, r.AsX(), r.AsX())
		}
	}
	Store(X0, ReturnIndex(0))
	Store(X4, ReturnIndex(1))
	VZEROUPPER()
	RET()
}

// quantizeKernel emits quantizeAVX2, dynamic quantization's code step:
//
//	v = x*inv (float32), clamped to [-2^24, 2^24] (NaN to -2^24)
//	q = clamp(round_half_even(v) + zp, 0, qmax)
//
// VCVTPS2DQ rounds half to even under the default MXCSR, which Go keeps.
// The order of VMAXPS's sources sends NaN to the bound, as code's
// `!(v >= lo)` does. 32 codes per step, then 8, then the last k mod 8
// written a byte at a time.
func quantizeKernel() {
	TEXT("quantizeAVX2", NOSPLIT, "func(m, k int, x *float32, ldx int, q *uint8, ldq int, inv float32, zp, qmax int32, tail *int32)")
	Pragma("noescape")
	Doc("quantizeAVX2 sets q = clamp(round_half_even(clamp(x*inv, ±2^24)) + zp, 0, qmax) for m rows of k values.")
	m := Load(Param("m"), GP64())
	x := Load(Param("x"), GP64())
	ldx := Load(Param("ldx"), GP64())
	SHLQ(U8(2), ldx)
	q := Load(Param("q"), GP64())
	ldq := Load(Param("ldq"), GP64())
	tail := Load(Param("tail"), GP64())
	inv, zp, qmax, lo, hi, zero, perm, mask := Y12, Y13, Y14, Y15, Y11, Y10, Y9, Y7
	quantizeConsts(tail, inv, zp, qmax, lo, hi, zero, mask)
	// The packs below leave dwords (groups of 4 codes) in the order
	// Y0lo Y1lo Y2lo Y3lo Y0hi Y1hi Y2hi Y3hi; VPERMD by 0 4 1 5 2 6 3 7
	// restores it.
	pt := GP64()
	MOVQ(U64(0x0000000400000000), pt)
	VMOVQ(pt, X9)
	MOVQ(U64(0x0000000500000001), pt)
	VPINSRQ(U8(1), pt, X9, X9)
	MOVQ(U64(0x0000000600000002), pt)
	VMOVQ(pt, X8)
	MOVQ(U64(0x0000000700000003), pt)
	VPINSRQ(U8(1), pt, X8, X8)
	VINSERTI128(U8(1), X8, perm, perm)
	v := []VecPhysical{Y0, Y1, Y2, Y3}
	codes := func(r VecPhysical) {
		VMAXPS(lo, r, r) // r > lo ? r : lo, so NaN -> lo
		VMINPS(hi, r, r)
		VCVTPS2DQ(r, r)
		VPADDD(zp, r, r)
		VPMAXSD(zero, r, r)
		VPMINSD(qmax, r, r)
	}
	// eight packs the 8 codes of r into the low 8 bytes of r's xmm.
	eight := func(r VecPhysical) {
		VEXTRACTI128(U8(1), r, X8)
		VPACKUSDW(X8, r.AsX(), r.AsX())
		VPACKUSWB(r.AsX(), r.AsX(), r.AsX())
	}
	n, px, pq := GP64(), GP64(), GP64()
	Label("quantize_row")
	TESTQ(m, m)
	JZ(LabelRef("quantize_done"))
	Load(Param("k"), n)
	MOVQ(x, px)
	MOVQ(q, pq)
	Label("quantize_32")
	CMPQ(n, U8(32))
	JL(LabelRef("quantize_8"))
	for i := 0; i < 4; i++ {
		VMULPS(Mem{Base: px, Disp: 32 * i}, inv, v[i])
		codes(v[i])
	}
	VPACKUSDW(Y1, Y0, Y0) // in-lane: 0-3 of Y0, 0-3 of Y1 | 4-7, 4-7
	VPACKUSDW(Y3, Y2, Y2)
	VPACKUSWB(Y2, Y0, Y0)
	VPERMD(Y0, perm, Y0)
	VMOVDQU(Y0, Mem{Base: pq})
	ADDQ(U8(128), px)
	ADDQ(U8(32), pq)
	SUBQ(U8(32), n)
	JMP(LabelRef("quantize_32"))
	Label("quantize_8")
	CMPQ(n, U8(8))
	JL(LabelRef("quantize_tail"))
	VMULPS(Mem{Base: px}, inv, Y0)
	codes(Y0)
	eight(Y0)
	VMOVQ(X0, Mem{Base: pq})
	ADDQ(U8(32), px)
	ADDQ(U8(8), pq)
	SUBQ(U8(8), n)
	JMP(LabelRef("quantize_8"))
	Label("quantize_tail")
	TESTQ(n, n)
	JZ(LabelRef("quantize_next"))
	VMASKMOVPS(Mem{Base: px}, mask, Y0)
	VMULPS(inv, Y0, Y0)
	codes(Y0)
	eight(Y0)
	VMOVQ(X0, pt)
	Label("quantize_byte")
	MOVB(pt.As8(), Mem{Base: pq})
	SHRQ(U8(8), pt)
	INCQ(pq)
	DECQ(n)
	JNZ(LabelRef("quantize_byte"))
	Label("quantize_next")
	ADDQ(ldx, x)
	ADDQ(ldq, q)
	DECQ(m)
	JMP(LabelRef("quantize_row"))
	Label("quantize_done")
	VZEROUPPER()
	RET()
}

// dequantKernel emits dequantAVX2, the float output of a quantized product
// for m rows of n elements:
//
//	t = float32(acc[j] - zc[j]) * mult[j] + bias[j]   (each op rounded)
//	y[j] = t, or y[j] + t when add ≠ 0
func dequantKernel() {
	TEXT("dequantAVX2", NOSPLIT, "func(m, n int, acc *int32, ldacc int, zc *int32, mult, bias, y *float32, ldy int, flags int, tail *int32)")
	Pragma("noescape")
	Doc("dequantAVX2 sets y[i][j] (+)= float32(acc[i][j]-zc[j])*mult[j] + bias[j], each operation rounded;",
		"flags bit 0 adds to y, bit 1 then applies max(y, 0) as Go's max does (NaN stays NaN, -0 becomes +0).")
	m := Load(Param("m"), GP64())
	acc := Load(Param("acc"), GP64())
	ldacc := Load(Param("ldacc"), GP64())
	SHLQ(U8(2), ldacc)
	zc := Load(Param("zc"), GP64())
	mult := Load(Param("mult"), GP64())
	bias := Load(Param("bias"), GP64())
	y := Load(Param("y"), GP64())
	ldy := Load(Param("ldy"), GP64())
	SHLQ(U8(2), ldy)
	flags := Load(Param("flags"), GP64())
	add, relu := GP64(), GP64()
	MOVQ(flags, add)
	ANDQ(U8(1), add)
	MOVQ(flags, relu)
	ANDQ(U8(2), relu)
	tail := Load(Param("tail"), GP64())
	mask := Y15
	VMOVDQU(Mem{Base: tail}, mask)
	zero := Y14
	VXORPS(zero, zero, zero)
	// rectify keeps Y0 where it is above 0 or NaN (not less-or-equal,
	// unordered: predicate 6) and zeroes it elsewhere, -0 included.
	rectify := func(skip string) {
		TESTQ(relu, relu)
		JZ(LabelRef(skip))
		VCMPPS(U8(6), zero, Y0, Y2)
		VANDPS(Y2, Y0, Y0)
		Label(skip)
	}
	n8 := Load(Param("n"), GP64())
	ANDQ(I8(-8), n8)
	j := GP64()
	at := func(base Register) Mem { return Mem{Base: base, Index: j, Scale: 4} }
	Label("dequant_row")
	TESTQ(m, m)
	JZ(LabelRef("dequant_done"))
	XORQ(j, j)
	Label("dequant_8")
	CMPQ(j, n8)
	JGE(LabelRef("dequant_tail"))
	VMOVDQU(at(acc), Y0)
	VPSUBD(at(zc), Y0, Y0)
	VCVTDQ2PS(Y0, Y0)
	VMULPS(at(mult), Y0, Y0)
	VADDPS(at(bias), Y0, Y0)
	TESTQ(add, add)
	JZ(LabelRef("dequant_store"))
	VADDPS(at(y), Y0, Y0)
	Label("dequant_store")
	rectify("dequant_stored")
	VMOVUPS(Y0, at(y))
	ADDQ(U8(8), j)
	JMP(LabelRef("dequant_8"))
	Label("dequant_tail")
	CMPQ(j, paramAddr("n"))
	JE(LabelRef("dequant_next"))
	VPMASKMOVD(at(acc), mask, Y0)
	VPMASKMOVD(at(zc), mask, Y1)
	VPSUBD(Y1, Y0, Y0)
	VCVTDQ2PS(Y0, Y0)
	VMASKMOVPS(at(mult), mask, Y1)
	VMULPS(Y1, Y0, Y0)
	VMASKMOVPS(at(bias), mask, Y1)
	VADDPS(Y1, Y0, Y0)
	TESTQ(add, add)
	JZ(LabelRef("dequant_tailstore"))
	VMASKMOVPS(at(y), mask, Y1)
	VADDPS(Y1, Y0, Y0)
	Label("dequant_tailstore")
	rectify("dequant_tailstored")
	VMASKMOVPS(Y0, mask, at(y))
	Label("dequant_next")
	ADDQ(ldacc, acc)
	ADDQ(ldy, y)
	DECQ(m)
	JMP(LabelRef("dequant_row"))
	Label("dequant_done")
	VZEROUPPER()
	RET()
}

// paramAddr is the stack address of a scalar argument.
func paramAddr(name string) Mem {
	p, err := Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	return p.Addr
}

var ymm = []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}

var zmm = []VecPhysical{
	Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
	Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31,
}

// tapsMaxR is the most output channels a taps tile holds: 2·r
// accumulators and the 2 vectors of A in 32 registers.
const tapsMaxR = 15

// tapsKernel emits tapsVNNI<r>, a convolution tile vectorized over output
// positions rather than output channels, for layers whose few channels
// would leave most of a 16-lane column tile empty:
//
//	func(nb int, a *uint8, gs int, cg int, taps *int, nt int, b *int8, c *int32, ldc int)
//
// A is laid out [cg][positions][4]: 4 channels' codes of one position in
// a 32-bit lane, so one 64-byte load holds 16 positions' 4 channels and
// VPDPBUSD sums 4 channels of one tap for 16 positions at once, against
// one output channel's 4 weights broadcast from memory (embedded
// broadcast: the weight operand may be memory, the code operand is the
// register). Tap t of a position p reads position p + taps[t]/4 (taps in
// bytes), groups gs bytes apart. b holds the tile's weights [nt][cg][r][4].
// The tile computes nb blocks of 32 positions: c[j·ldc + p] for j < r,
// p < 32·nb (ldc in int32s), stored whole.
func tapsKernel(r int) {
	name := fmt.Sprintf("tapsVNNI%d", r)
	const nv = 2
	acc := func(j, v int) VecPhysical { return zmm[j*nv+v] }
	av := []VecPhysical{zmm[2*tapsMaxR], zmm[2*tapsMaxR+1]}
	TEXT(name, NOSPLIT, "func(nb int, a *uint8, gs int, cg int, taps *int, nt int, b *int8, c *int32, ldc int)")
	Pragma("noescape")
	Doc(
		fmt.Sprintf("%s computes %d output channels' sums of nb blocks of 32 positions over nt taps (VNNI).", name, r),
		"A is [cg][positions][4] codes, groups gs bytes apart; b the weights [nt][cg][r][4]; C's rows ldc int32s apart.",
	)
	nb := Load(Param("nb"), GP64())
	a := Load(Param("a"), GP64())
	gs := Load(Param("gs"), GP64())
	c := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)
	bp, tp, ap, t, g := GP64(), GP64(), GP64(), GP64(), GP64()

	Label(name + "_block")
	for j := 0; j < r; j++ {
		for v := 0; v < nv; v++ {
			VPXORD(acc(j, v), acc(j, v), acc(j, v))
		}
	}
	Load(Param("b"), bp)
	Load(Param("taps"), tp)
	Load(Param("nt"), t)
	Label(name + "_tap")
	MOVQ(a, ap)
	ADDQ(Mem{Base: tp}, ap)
	Load(Param("cg"), g)
	Label(name + "_group")
	for v := 0; v < nv; v++ {
		VMOVDQU32(Mem{Base: ap, Disp: 64 * v}, av[v])
	}
	for j := 0; j < r; j++ {
		for v := 0; v < nv; v++ {
			Instruction(&ir.Instruction{
				Opcode:   "VPDPBUSD.BCST",
				Operands: []Op{Mem{Base: bp, Disp: 4 * j}, av[v], acc(j, v)},
				Inputs:   []Op{Mem{Base: bp, Disp: 4 * j}, av[v], acc(j, v)},
				Outputs:  []Op{acc(j, v)},
				ISA:      []string{"AVX512_VNNI"},
			})
		}
	}
	ADDQ(U32(4*r), bp)
	ADDQ(gs, ap)
	DECQ(g)
	JNZ(LabelRef(name + "_group"))
	ADDQ(U8(8), tp)
	DECQ(t)
	JNZ(LabelRef(name + "_tap"))

	MOVQ(c, ap)
	for j := 0; j < r; j++ {
		for v := 0; v < nv; v++ {
			VMOVDQU32(acc(j, v), Mem{Base: ap, Disp: 64 * v})
		}
		if j < r-1 {
			ADDQ(ldc, ap)
		}
	}
	ADDQ(U8(128), a)
	ADDQ(U8(128), c)
	DECQ(nb)
	JNZ(LabelRef(name + "_block"))
	VZEROUPPER()
	RET()
}

// quantizeGroupKernel emits quantizeGroupAVX2, the codes of 4 channels
// interleaved for the taps kernels: q[4p+i] = code(x_i[p]) for p < n, with
// quantizeAVX2's steps (the same bits), the 4 codes of a position put in
// one 32-bit lane by shifts.
func quantizeGroupKernel() {
	TEXT("quantizeGroupAVX2", NOSPLIT, "func(n int, x0, x1, x2, x3 *float32, q *uint8, inv float32, zp, qmax int32, tail *int32)")
	Pragma("noescape")
	Doc("quantizeGroupAVX2 sets q[4p+i] = clamp(round_half_even(clamp(x_i[p]*inv, ±2^24)) + zp, 0, qmax) for p < n, i < 4.")
	n := Load(Param("n"), GP64())
	xs := []Register{Load(Param("x0"), GP64()), Load(Param("x1"), GP64()), Load(Param("x2"), GP64()), Load(Param("x3"), GP64())}
	q := Load(Param("q"), GP64())
	tail := Load(Param("tail"), GP64())
	inv, zp, qmax, lo, hi, zero, mask := Y12, Y13, Y14, Y15, Y11, Y10, Y9
	quantizeConsts(tail, inv, zp, qmax, lo, hi, zero, mask)
	v := []VecPhysical{Y0, Y1, Y2, Y3}
	codes := func(r VecPhysical) {
		VMAXPS(lo, r, r) // r > lo ? r : lo, so NaN -> lo
		VMINPS(hi, r, r)
		VCVTPS2DQ(r, r)
		VPADDD(zp, r, r)
		VPMAXSD(zero, r, r)
		VPMINSD(qmax, r, r)
	}
	combine := func() {
		for i := 1; i < 4; i++ {
			VPSLLD(U8(8*i), v[i], v[i])
		}
		VPOR(v[1], v[0], v[0])
		VPOR(v[3], v[2], v[2])
		VPOR(v[2], v[0], v[0])
	}
	Label("qgroup_8")
	CMPQ(n, U8(8))
	JL(LabelRef("qgroup_tail"))
	for i := 0; i < 4; i++ {
		VMULPS(Mem{Base: xs[i]}, inv, v[i])
		codes(v[i])
		ADDQ(U8(32), xs[i])
	}
	combine()
	VMOVDQU(Y0, Mem{Base: q})
	ADDQ(U8(32), q)
	SUBQ(U8(8), n)
	JMP(LabelRef("qgroup_8"))
	Label("qgroup_tail")
	TESTQ(n, n)
	JZ(LabelRef("qgroup_done"))
	for i := 0; i < 4; i++ {
		VMASKMOVPS(Mem{Base: xs[i]}, mask, v[i])
		VMULPS(inv, v[i], v[i])
		codes(v[i])
	}
	combine()
	VPMASKMOVD(Y0, mask, Mem{Base: q})
	Label("qgroup_done")
	VZEROUPPER()
	RET()
}

// planeOutKernel emits planeOutAVX512, the taps route's whole output pass
// for nc output channels, each a plane of m rows of n sums (rows ldacc
// int32s apart, channel j's plane at acc + j·ldc), with channel j's
// constants zc[j], mult[j], bias[j] (and scale[j], shift[j] with the norm):
//
//	v = float32(acc - zc)*mult + bias       (dequantKernel's operations)
//	v = v*scale + shift                     flags&1 (an eval batch norm)
//	v = v + res                             flags&2 (a residual)
//	v = max(v, 0), Go's max                 flags&4
//	y = v                                   flags&8
//	code(v) to one byte of 4                flags&16 (quantizeKernel's steps)
//
// each operation rounded on its own. res and y are planes of rows ldy
// apart, channel j's at j·plane. Channel j's codes start at byte
// (j/4)·gsq + j%4 of q, rows ldq bytes apart, one byte of each 4-byte
// position (a byte-masked store): the layout ConvTaps reads, so the next
// convolution's input is written without a float pass in between. The
// tail of a row is masked, so nothing past n is read or written; the masks
// are set once per call.
func planeOutKernel() {
	TEXT("planeOutAVX512", NOSPLIT, "func(nc, m, n int, acc *int32, ldacc, ldc int, zc *int32, mult, bias, scale, shift *float32, res, y *float32, ldy, plane int, q *uint8, ldq, gsq int, inv float32, zp, qmax int32, flags int)")
	Pragma("noescape")
	Doc("planeOutAVX512 rescales nc planes of m rows of n int32 sums and applies a norm, residual, ReLU, float store and code store as flags say.")
	flags := Load(Param("flags"), GP64())
	inv, zp, qmax := Z21, Z22, Z23
	zc, mult, bias, scale, shift := Z16, Z17, Z18, Z19, Z20
	lo, hi, zero := Z24, Z25, Z26
	t := GP64()
	VBROADCASTSS(paramAddr("inv"), inv)
	Load(Param("zp"), t.As32())
	VPBROADCASTD(t.As32(), zp)
	Load(Param("qmax"), t.As32())
	VPBROADCASTD(t.As32(), qmax)
	MOVL(U32(0xcb800000), t.As32()) // -2^24
	VPBROADCASTD(t.As32(), lo)
	MOVL(U32(0x4b800000), t.As32()) // 2^24
	VPBROADCASTD(t.As32(), hi)
	VPXORD(zero, zero, zero)
	// Masks: K1, K2 a whole vector's floats and code bytes; K4, K5 the
	// row's last n mod 16.
	MOVL(U32(0xffff), t.As32())
	KMOVW(t.As32(), K1)
	pat := GP64()
	MOVQ(U64(0x1111111111111111), pat)
	KMOVQ(pat, K2)
	rem := Load(Param("n"), GP64())
	ANDQ(U8(15), rem)
	BZHIQ(rem, t, t)
	KMOVW(t.As32(), K4)
	SHLQ(U8(2), rem)
	BZHIQ(rem, pat, pat)
	KMOVQ(pat, K5)

	j := GP64() // the channel
	accp, resp, yp, qp, row, i, nv := GP64(), GP64(), GP64(), GP64(), GP64(), GP64(), GP64()
	XORQ(j, j)
	Label("pout_chan")
	CMPQ(j, paramAddr("nc"))
	JGE(LabelRef("pout_done"))
	for _, c := range []struct {
		name string
		r    VecPhysical
	}{{"zc", zc}, {"mult", mult}, {"bias", bias}} {
		Load(Param(c.name), t)
		VPBROADCASTD(Mem{Base: t, Index: j, Scale: 4}, c.r)
	}
	TESTQ(U32(1), flags)
	JZ(LabelRef("pout_ptrs"))
	Load(Param("scale"), t)
	VPBROADCASTD(Mem{Base: t, Index: j, Scale: 4}, scale)
	Load(Param("shift"), t)
	VPBROADCASTD(Mem{Base: t, Index: j, Scale: 4}, shift)
	Label("pout_ptrs")
	Load(Param("ldc"), t)
	IMULQ(j, t)
	Load(Param("acc"), accp)
	LEAQ(Mem{Base: accp, Index: t, Scale: 4}, accp)
	Load(Param("plane"), t)
	IMULQ(j, t)
	Load(Param("res"), resp)
	LEAQ(Mem{Base: resp, Index: t, Scale: 4}, resp)
	Load(Param("y"), yp)
	LEAQ(Mem{Base: yp, Index: t, Scale: 4}, yp)
	MOVQ(j, t)
	SHRQ(U8(2), t)
	Load(Param("gsq"), qp)
	IMULQ(qp, t)
	Load(Param("q"), qp)
	ADDQ(t, qp)
	MOVQ(j, t)
	ANDQ(U8(3), t)
	ADDQ(t, qp)
	Load(Param("m"), row)

	Label("pout_row")
	TESTQ(row, row)
	JZ(LabelRef("pout_nextchan"))
	XORQ(i, i)
	Load(Param("n"), nv)
	SHRQ(U8(4), nv)
	at := func(base Register) Mem { return Mem{Base: base, Index: i, Scale: 4} }
	body := func(sfx string, kf, kb Op) {
		VMOVDQU32_Z(at(accp), kf, Z0)
		VPSUBD(zc, Z0, Z0)
		VCVTDQ2PS(Z0, Z0)
		VMULPS(mult, Z0, Z0)
		VADDPS(bias, Z0, Z0)
		TESTQ(U32(1), flags)
		JZ(LabelRef("pout_res" + sfx))
		VMULPS(scale, Z0, Z0)
		VADDPS(shift, Z0, Z0)
		Label("pout_res" + sfx)
		TESTQ(U32(2), flags)
		JZ(LabelRef("pout_relu" + sfx))
		VMOVUPS_Z(at(resp), kf, Z1)
		VADDPS(Z1, Z0, Z0)
		Label("pout_relu" + sfx)
		TESTQ(U32(4), flags)
		JZ(LabelRef("pout_y" + sfx))
		// Kept where above 0 or NaN (predicate 6, not less-or-equal,
		// unordered), zeroed elsewhere, -0 included: Go's max(v, 0).
		VCMPPS(U8(6), zero, Z0, K3)
		VMOVUPS_Z(Z0, K3, Z0)
		Label("pout_y" + sfx)
		TESTQ(U32(8), flags)
		JZ(LabelRef("pout_q" + sfx))
		VMOVUPS(Z0, kf, at(yp))
		Label("pout_q" + sfx)
		TESTQ(U32(16), flags)
		JZ(LabelRef("pout_step" + sfx))
		VMULPS(inv, Z0, Z1)
		VMAXPS(lo, Z1, Z1) // Z1 > lo ? Z1 : lo, so NaN -> lo
		VMINPS(hi, Z1, Z1)
		VCVTPS2DQ(Z1, Z1)
		VPADDD(zp, Z1, Z1)
		VPMAXSD(zero, Z1, Z1)
		VPMINSD(qmax, Z1, Z1)
		VMOVDQU8(Z1, kb, at(qp))
		Label("pout_step" + sfx)
	}
	Label("pout_vec")
	TESTQ(nv, nv)
	JZ(LabelRef("pout_tail"))
	body("", K1, K2)
	ADDQ(U8(16), i)
	DECQ(nv)
	JMP(LabelRef("pout_vec"))
	Label("pout_tail")
	CMPQ(i, paramAddr("n"))
	JE(LabelRef("pout_nextrow"))
	body("_t", K4, K5)

	Label("pout_nextrow")
	Load(Param("ldacc"), t)
	LEAQ(Mem{Base: accp, Index: t, Scale: 4}, accp)
	Load(Param("ldy"), t)
	LEAQ(Mem{Base: resp, Index: t, Scale: 4}, resp)
	LEAQ(Mem{Base: yp, Index: t, Scale: 4}, yp)
	Load(Param("ldq"), t)
	ADDQ(t, qp)
	DECQ(row)
	JMP(LabelRef("pout_row"))
	Label("pout_nextchan")
	INCQ(j)
	JMP(LabelRef("pout_chan"))
	Label("pout_done")
	VZEROUPPER()
	RET()
}

// quantizeConsts loads the AVX2 quantize kernels' constants: the tail mask,
// 1/scale, the zero point and qmax as dwords, the clamp bounds ±2^24, and
// zero.
func quantizeConsts(tail Register, inv, zp, qmax, lo, hi, zero, mask VecPhysical) {
	VMOVDQU(Mem{Base: tail}, mask)
	VBROADCASTSS(paramAddr("inv"), inv)
	// Through a GP register: vet's asmdecl misreads VPBROADCASTD's memory size.
	t := GP32()
	Load(Param("zp"), t)
	VMOVD(t, zp.AsX())
	VPBROADCASTD(zp.AsX(), zp)
	Load(Param("qmax"), t)
	VMOVD(t, qmax.AsX())
	VPBROADCASTD(qmax.AsX(), qmax)
	MOVL(U32(0xcb800000), t) // -2^24
	VMOVD(t, lo.AsX())
	VBROADCASTSS(lo.AsX(), lo)
	MOVL(U32(0x4b800000), t) // 2^24
	VMOVD(t, hi.AsX())
	VBROADCASTSS(hi.AsX(), hi)
	VPXOR(zero, zero, zero)
}
