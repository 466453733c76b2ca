//go:build ignore

// Command eltgen writes the AVX-512 element-wise kernels of package vec
// with avo: `go generate ./internal/vec` writes elt_amd64.s and
// elt_stubs_amd64.go.
//
// reluAVX512 is, lane by lane, the instruction sequence Go compiles
// max(v, 0) to on amd64 (negate, two MINSS, OR, negate back: +0 for -0 and
// for negative values, a NaN keeps its payload with the sign cleared), so
// the result bits are the Go loop's, NaNs included; reluGradAVX512 keeps dy
// where y's bits are non-zero, exactly as the Go loop's mask does; addAVX512
// is a + b with a the first operand, as ADDSS has it in the Go loop (which
// NaN wins when both are).
package main

import (
	"github.com/mmcloughlin/avo/attr"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("!purego")
	relu()
	reluGrad()
	add()
	sumReLU()
	sumReLUGrad()
	gather2()
	addTo2()
	Generate()
}

// loop emits a loop over n floats, 64 then 16 at a time, then the last
// n%16 under a mask; body gets the byte offset (register plus disp) and
// the mask (nil: all 16).
func loop(name string, n Register, body func(off Register, disp int, k Op)) {
	off := GP64()
	XORQ(off, off)
	Label(name + "_by64")
	CMPQ(n, Imm(64))
	JL(LabelRef(name + "_by16"))
	for q := range 4 {
		body(off, 64*q, nil)
	}
	ADDQ(U32(256), off)
	SUBQ(Imm(64), n)
	JMP(LabelRef(name + "_by64"))
	Label(name + "_by16")
	CMPQ(n, Imm(16))
	JL(LabelRef(name + "_tail"))
	body(off, 0, nil)
	ADDQ(Imm(64), off)
	SUBQ(Imm(16), n)
	JMP(LabelRef(name + "_by16"))
	Label(name + "_tail")
	TESTQ(n, n)
	JZ(LabelRef(name + "_done"))
	ones, m := GP32(), GP32()
	MOVL(U32(0xffff), ones)
	BZHIL(n.(GPVirtual).As32(), ones, m)
	KMOVW(m, K1)
	body(off, 0, K1)
	Label(name + "_done")
}

func relu() {
	TEXT("reluAVX512", NOSPLIT, "func(n int, y, x *float32)")
	Pragma("noescape")
	Doc("reluAVX512 sets y = max(x, 0) for n floats, as the Go loop does.")
	n := Load(Param("n"), GP64())
	y := Load(Param("y"), GP64())
	x := Load(Param("x"), GP64())
	sign, nzero := ZMM(), ZMM()
	t := GP32()
	MOVL(U32(0x80000000), t)
	VPBROADCASTD(t, sign)
	VMOVAPS(sign, nzero) // -0
	loop("reluAVX512", n, func(off Register, disp int, k Op) {
		v := ZMM()
		at := Mem{Base: x, Index: off, Scale: 1, Disp: disp}
		if k == nil {
			VMOVUPS(at, v)
		} else {
			VMOVUPS_Z(at, k, v)
		}
		VXORPS(sign, v, v) // -x
		t1, t2 := ZMM(), ZMM()
		VMINPS(nzero, v, t1) // (-x < -0) ? -x : -0
		VMINPS(v, t1, t2)    // (t1 < -x) ? t1 : -x
		VORPS(t1, t2, t2)
		VXORPS(sign, t2, t2)
		out := Mem{Base: y, Index: off, Scale: 1, Disp: disp}
		if k == nil {
			VMOVUPS(t2, out)
		} else {
			VMOVUPS(t2, k, out)
		}
	})
	VZEROUPPER()
	RET()
}

func reluGrad() {
	TEXT("reluGradAVX512", NOSPLIT, "func(n int, dx, y, dy *float32)")
	Pragma("noescape")
	Doc("reluGradAVX512 sets dx = dy where y's bits are non-zero, else +0, for n floats.")
	n := Load(Param("n"), GP64())
	dx := Load(Param("dx"), GP64())
	y := Load(Param("y"), GP64())
	dy := Load(Param("dy"), GP64())
	loop("reluGradAVX512", n, func(off Register, disp int, k Op) {
		v, g := ZMM(), ZMM()
		keep := K()
		at := func(p Register) Mem { return Mem{Base: p, Index: off, Scale: 1, Disp: disp} }
		if k == nil {
			VMOVUPS(at(y), v)
			VPTESTMD(v, v, keep)
		} else {
			VMOVUPS_Z(at(y), k, v)
			VPTESTMD(v, v, keep) // masked-off lanes are zero: not kept, not stored
		}
		VMOVDQU32_Z(at(dy), keep, g)
		if k == nil {
			VMOVUPS(g, at(dx))
		} else {
			VMOVUPS(g, k, at(dx))
		}
	})
	VZEROUPPER()
	RET()
}

func add() {
	TEXT("addAVX512", NOSPLIT, "func(n int, y, a, b *float32)")
	Pragma("noescape")
	Doc("addAVX512 sets y = a + b for n floats.")
	n := Load(Param("n"), GP64())
	y := Load(Param("y"), GP64())
	a := Load(Param("a"), GP64())
	b := Load(Param("b"), GP64())
	loop("addAVX512", n, func(off Register, disp int, k Op) {
		at := func(p Register) Mem { return Mem{Base: p, Index: off, Scale: 1, Disp: disp} }
		v := ZMM()
		if k == nil {
			VMOVUPS(at(a), v)
			VADDPS(at(b), v, v)
			VMOVUPS(v, at(y))
		} else {
			w := ZMM()
			VMOVUPS_Z(at(a), k, v)
			VMOVUPS_Z(at(b), k, w)
			VADDPS(w, v, v)
			VMOVUPS(v, k, at(y))
		}
	})
	VZEROUPPER()
	RET()
}

// reluSeq sets t2 = max(v, 0) as reluAVX512 does (v is clobbered).
func reluSeq(v, sign, nzero VecVirtual) VecVirtual {
	VXORPS(sign, v, v) // -x
	t1, t2 := ZMM(), ZMM()
	VMINPS(nzero, v, t1) // (-x < -0) ? -x : -0
	VMINPS(v, t1, t2)    // (t1 < -x) ? t1 : -x
	VORPS(t1, t2, t2)
	VXORPS(sign, t2, t2)
	return t2
}

// sumReLU emits y = max(a + b, 0): addAVX512's sum then reluAVX512's
// instructions, a residual add and the ReLU after it in one pass.
func sumReLU() {
	TEXT("sumReLUAVX512", NOSPLIT, "func(n int, y, a, b *float32)")
	Pragma("noescape")
	Doc("sumReLUAVX512 sets y = max(a + b, 0) for n floats, as the Go loop does.")
	n := Load(Param("n"), GP64())
	y := Load(Param("y"), GP64())
	a := Load(Param("a"), GP64())
	b := Load(Param("b"), GP64())
	sign, nzero := ZMM(), ZMM()
	t := GP32()
	MOVL(U32(0x80000000), t)
	VPBROADCASTD(t, sign)
	VMOVAPS(sign, nzero) // -0
	loop("sumReLUAVX512", n, func(off Register, disp int, k Op) {
		at := func(p Register) Mem { return Mem{Base: p, Index: off, Scale: 1, Disp: disp} }
		v := ZMM()
		if k == nil {
			VMOVUPS(at(a), v)
			VADDPS(at(b), v, v)
		} else {
			w := ZMM()
			VMOVUPS_Z(at(a), k, v)
			VMOVUPS_Z(at(b), k, w)
			VADDPS(w, v, v)
		}
		r := reluSeq(v, sign, nzero)
		if k == nil {
			VMOVUPS(r, at(y))
		} else {
			VMOVUPS(r, k, at(y))
		}
	})
	VZEROUPPER()
	RET()
}

// sumReLUGrad emits dx = a + b where y's bits are non-zero, else +0: a
// gradient sum (addAVX512's) and the ReLU gradient that reads it
// (reluGradAVX512's mask) in one pass.
func sumReLUGrad() {
	TEXT("sumReLUGradAVX512", NOSPLIT, "func(n int, dx, y, a, b *float32)")
	Pragma("noescape")
	Doc("sumReLUGradAVX512 sets dx = a + b where y's bits are non-zero, else +0, for n floats.")
	n := Load(Param("n"), GP64())
	dx := Load(Param("dx"), GP64())
	y := Load(Param("y"), GP64())
	a := Load(Param("a"), GP64())
	b := Load(Param("b"), GP64())
	loop("sumReLUGradAVX512", n, func(off Register, disp int, k Op) {
		at := func(p Register) Mem { return Mem{Base: p, Index: off, Scale: 1, Disp: disp} }
		v, va, vb, g := ZMM(), ZMM(), ZMM(), ZMM()
		keep := K()
		if k == nil {
			VMOVUPS(at(y), v)
		} else {
			VMOVUPS_Z(at(y), k, v)
		}
		VPTESTMD(v, v, keep) // masked-off lanes are zero: not kept
		VMOVUPS_Z(at(a), keep, va)
		VMOVUPS_Z(at(b), keep, vb)
		VADDPS_Z(vb, va, keep, g) // a + b, as addAVX512; +0 where not kept
		if k == nil {
			VMOVUPS(g, at(dx))
		} else {
			VMOVUPS(g, k, at(dx))
		}
	})
	VZEROUPPER()
	RET()
}

// gather2 emits dst[r·ldd + j] = src[r·lds + 2j] for r < rows, j < cols:
// the patch rows of a stride-2 convolution. Each 16 outputs are one
// VPERMT2PS of 32 floats (31 read: the last of a row is never touched).
func gather2() {
	idx := GLOBL("gather2Even", attr.RODATA|attr.NOPTR)
	for i := range 16 {
		DATA(4*i, U32(2*i))
	}
	TEXT("gather2AVX512", NOSPLIT, "func(dst *float32, ldd int, src *float32, lds int, rows, cols int)")
	Pragma("noescape")
	Doc("gather2AVX512 is gather2Ref (rows >= 1, cols >= 1).")
	dst := Load(Param("dst"), GP64())
	ldd := Load(Param("ldd"), GP64())
	src := Load(Param("src"), GP64())
	lds := Load(Param("lds"), GP64())
	rows := Load(Param("rows"), GP64())
	cols := Load(Param("cols"), GP64())
	SHLQ(Imm(2), ldd)
	SHLQ(Imm(2), lds)
	even := ZMM()
	VMOVDQU32(idx, even)
	// The tail's masks, the same for every row: m = cols%16 outputs read
	// 2m-1 floats, the first min(2m-1, 16) from a, the rest from b.
	m, need, t, ones := GP64(), GP64(), GP64(), GP32()
	MOVQ(cols, m)
	ANDQ(Imm(15), m)
	MOVL(U32(0xffffffff), ones)
	LEAQ(Mem{Base: m, Index: m, Scale: 1, Disp: -1}, need)
	MOVQ(need, t)
	CMPQ(t, Imm(16))
	JLE(LabelRef("gather2_lo"))
	MOVQ(U32(16), t)
	Label("gather2_lo")
	BZHIL(t.As32(), ones, t.As32())
	KMOVW(t.As32(), K1) // a's floats
	MOVQ(need, t)
	SUBQ(Imm(16), t)
	JGE(LabelRef("gather2_hi"))
	XORQ(t, t)
	Label("gather2_hi")
	BZHIL(t.As32(), ones, t.As32())
	KMOVW(t.As32(), K2) // b's floats
	BZHIL(m.As32(), ones, t.As32())
	KMOVW(t.As32(), K3) // the outputs
	MOVL(U32(0x7fff), t.As32())
	KMOVW(t.As32(), K4) // a full chunk's b: 15 floats

	Label("gather2_row")
	TESTQ(rows, rows)
	JZ(LabelRef("gather2_done"))
	j, left := GP64(), GP64()
	XORQ(j, j) // output byte offset; src's is twice it
	MOVQ(cols, left)
	Label("gather2_chunk")
	CMPQ(left, Imm(16))
	JL(LabelRef("gather2_tail"))
	a, b := ZMM(), ZMM()
	VMOVUPS(Mem{Base: src, Index: j, Scale: 2}, a)
	VMOVUPS_Z(Mem{Base: src, Index: j, Scale: 2, Disp: 64}, K4, b)
	VPERMT2PS(b, even, a)
	VMOVUPS(a, Mem{Base: dst, Index: j, Scale: 1})
	ADDQ(Imm(64), j)
	SUBQ(Imm(16), left)
	JMP(LabelRef("gather2_chunk"))
	Label("gather2_tail")
	TESTQ(left, left)
	JZ(LabelRef("gather2_next"))
	a2, b2 := ZMM(), ZMM()
	VMOVUPS_Z(Mem{Base: src, Index: j, Scale: 2}, K1, a2)
	VMOVUPS_Z(Mem{Base: src, Index: j, Scale: 2, Disp: 64}, K2, b2)
	VPERMT2PS(b2, even, a2)
	VMOVUPS(a2, K3, Mem{Base: dst, Index: j, Scale: 1})
	Label("gather2_next")
	ADDQ(ldd, dst)
	ADDQ(lds, src)
	DECQ(rows)
	JMP(LabelRef("gather2_row"))
	Label("gather2_done")
	VZEROUPPER()
	RET()
}

// addTo2 emits dst[r·ldd + 2j] += src[r·lds + j] for r < rows, j < cols:
// col2im's rows at stride 2, gather2's transpose. Each 16 sources are
// expanded to the even lanes of two vectors and added under the even mask
// (odd lanes are neither changed nor written; the sum has src as its first
// operand, as Go compiles addTo2Ref's loop, which only decides which NaN's
// payload survives when both are NaN).
func addTo2() {
	TEXT("addTo2AVX512", NOSPLIT, "func(dst *float32, ldd int, src *float32, lds int, rows, cols int)")
	Pragma("noescape")
	Doc("addTo2AVX512 is addTo2Ref (rows >= 1, cols >= 1).")
	dst := Load(Param("dst"), GP64())
	ldd := Load(Param("ldd"), GP64())
	src := Load(Param("src"), GP64())
	lds := Load(Param("lds"), GP64())
	rows := Load(Param("rows"), GP64())
	cols := Load(Param("cols"), GP64())
	SHLQ(Imm(2), ldd)
	SHLQ(Imm(2), lds)
	m, t, even := GP32(), GP32(), GP32()
	MOVL(U32(0x55555555), even)
	KMOVW(even, K1) // a full chunk's lanes, in both vectors
	// The tail's: m = cols%16 sources on the even lanes, m bits deposited.
	MOVL(cols.(GPVirtual).As32(), m)
	ANDL(Imm(15), m)
	MOVL(U32(0xffffffff), t)
	BZHIL(m, t, t)
	PDEPL(even, t, t)
	KMOVW(t, K2)
	SHRL(Imm(16), t)
	KMOVW(t, K3)

	Label("addTo2_row")
	TESTQ(rows, rows)
	JZ(LabelRef("addTo2_done"))
	j, left := GP64(), GP64()
	XORQ(j, j) // source byte offset; dst's is twice it
	MOVQ(cols, left)
	Label("addTo2_chunk")
	CMPQ(left, Imm(16))
	JL(LabelRef("addTo2_tail"))
	body := func(ka, kb Op) {
		for h, k := range []Op{ka, kb} {
			e, a := ZMM(), ZMM()
			VEXPANDPS_Z(Mem{Base: src, Index: j, Scale: 1, Disp: 32 * h}, k, e)
			at := Mem{Base: dst, Index: j, Scale: 2, Disp: 64 * h}
			VMOVUPS_Z(at, k, a)
			VADDPS(a, e, k, a) // src + dst, as the Go loop compiles
			VMOVUPS(a, k, at)
		}
	}
	body(K1, K1)
	ADDQ(Imm(64), j)
	SUBQ(Imm(16), left)
	JMP(LabelRef("addTo2_chunk"))
	Label("addTo2_tail")
	TESTQ(left, left)
	JZ(LabelRef("addTo2_next"))
	body(K2, K3)
	Label("addTo2_next")
	ADDQ(ldd, dst)
	ADDQ(lds, src)
	DECQ(rows)
	JMP(LabelRef("addTo2_row"))
	Label("addTo2_done")
	VZEROUPPER()
	RET()
}
