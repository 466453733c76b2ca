//go:build ignore

// Command lstmgen writes the AVX2 LSTM cell of package vec with avo:
// `go generate ./internal/vec` writes lstm_amd64.s and lstm_stubs_amd64.go.
//
// The kernel performs, 8 lanes at a time, exactly the operations of
// LSTMCell's Go loop (Exp, Sigmoid, Tanh in lstm.go), in the same order and
// without fused multiply-adds, so the two give the same bits. Constants are
// read from a table of 8-lane rows (cellConsts), since they outnumber the
// registers.
package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Rows of cellConsts.
const (
	cLo = iota
	cHi
	cLog2e
	cC1
	cC2
	cP0
	cP1
	cP2
	cP3
	cP4
	cP5
	cOne
	cTwo
	cSmall
	cQ0
	cQ1
	cQ2
	cQ3
	cQ4
	cAbs
	cSign
	cBias
)

var consts Register

func k(i int) Mem { return Mem{Base: consts, Disp: 32 * i} }

func main() {
	ConstraintExpr("!purego")
	cell()
	Generate()
}

// exp returns e^x (x is left unchanged).
func exp(x VecVirtual) VecVirtual {
	r := YMM()
	VMAXPS(k(cLo), x, r)
	VMINPS(k(cHi), r, r)
	t, n := YMM(), YMM()
	VMULPS(k(cLog2e), r, t)
	VROUNDPS(Imm(8), t, n) // to nearest, ties to even; no precision exception
	VMULPS(k(cC1), n, t)
	VSUBPS(t, r, r)
	VMULPS(k(cC2), n, t)
	VSUBPS(t, r, r)
	zz, y := YMM(), YMM()
	VMULPS(r, r, zz)
	VMULPS(k(cP0), r, y)
	VADDPS(k(cP1), y, y)
	for _, p := range []int{cP2, cP3, cP4, cP5} {
		VMULPS(r, y, y)
		VADDPS(k(p), y, y)
	}
	VMULPS(zz, y, y)
	VADDPS(r, y, y)
	VADDPS(k(cOne), y, y)
	// 2^n from its exponent bits: (n + 127) << 23.
	VCVTPS2DQ(n, n)
	VPADDD(k(cBias), n, n)
	VPSLLD(Imm(23), n, n)
	VMULPS(n, y, y)
	return y
}

// sigmoid returns 1 / (1 + e^-x).
func sigmoid(x VecVirtual) VecVirtual {
	nx := YMM()
	VXORPS(k(cSign), x, nx)
	e := exp(nx)
	VADDPS(k(cOne), e, e)
	r := YMM()
	VMOVUPS(k(cOne), r)
	VDIVPS(e, r, r)
	return r
}

// tanh returns tanh x: the polynomial where |x| < 0.625, else
// copysign(1 - 2/(e^2|x| + 1), x).
func tanh(x VecVirtual) VecVirtual {
	a := YMM()
	VANDPS(k(cAbs), x, a)
	zz, p := YMM(), YMM()
	VMULPS(x, x, zz)
	VMULPS(k(cQ0), zz, p)
	VADDPS(k(cQ1), p, p)
	for _, q := range []int{cQ2, cQ3, cQ4} {
		VMULPS(zz, p, p)
		VADDPS(k(q), p, p)
	}
	VMULPS(zz, p, p)
	VMULPS(x, p, p)
	VADDPS(x, p, p)

	a2 := YMM()
	VADDPS(a, a, a2)
	e := exp(a2)
	VADDPS(k(cOne), e, e)
	q := YMM()
	VMOVUPS(k(cTwo), q)
	VDIVPS(e, q, q)
	r := YMM()
	VMOVUPS(k(cOne), r)
	VSUBPS(q, r, r)
	s := YMM()
	VANDPS(k(cSign), x, s)
	VORPS(s, r, r)

	m := YMM()
	VCMPPS(Imm(1), k(cSmall), a, m) // |x| < 0.625 (LT_OS)
	VBLENDVPS(m, p, r, r)
	return r
}

func cell() {
	TEXT("lstmCellAVX2", NOSPLIT, "func(n, hs int, z, cprev, c, tc, h, consts *float32)")
	Pragma("noescape")
	Doc("lstmCellAVX2 is LSTMCell on the first n (a multiple of 8) of each gate's hs values.")
	n := Load(Param("n"), GP64())
	hs := Load(Param("hs"), GP64())
	z := Load(Param("z"), GP64())
	cp := Load(Param("cprev"), GP64())
	c := Load(Param("c"), GP64())
	tc := Load(Param("tc"), GP64())
	h := Load(Param("h"), GP64())
	consts = Load(Param("consts"), GP64())
	s1, s2, s3 := GP64(), GP64(), GP64()
	SHLQ(Imm(2), hs) // bytes per gate
	MOVQ(hs, s1)
	LEAQ(Mem{Base: hs, Index: hs, Scale: 1}, s2)
	LEAQ(Mem{Base: s2, Index: hs, Scale: 1}, s3)

	Label("cell_loop")
	CMPQ(n, Imm(8))
	JL(LabelRef("cell_done"))
	gate := func(off Register, act func(VecVirtual) VecVirtual) VecVirtual {
		addr := Mem{Base: z}
		if off != nil {
			addr = Mem{Base: z, Index: off, Scale: 1}
		}
		x := YMM()
		VMOVUPS(addr, x)
		y := act(x)
		VMOVUPS(y, addr)
		return y
	}
	i := gate(nil, sigmoid)
	g := gate(s2, tanh)
	ig := YMM()
	VMULPS(g, i, ig)
	f := gate(s1, sigmoid)
	VMULPS(Mem{Base: cp}, f, f)
	VADDPS(ig, f, f) // c = f·cprev + i·g
	VMOVUPS(f, Mem{Base: c})
	t := tanh(f)
	VMOVUPS(t, Mem{Base: tc})
	o := gate(s3, sigmoid)
	VMULPS(t, o, o)
	VMOVUPS(o, Mem{Base: h})

	for _, p := range []Register{z, cp, c, tc, h} {
		ADDQ(Imm(32), p)
	}
	SUBQ(Imm(8), n)
	JMP(LabelRef("cell_loop"))

	Label("cell_done")
	VZEROUPPER()
	RET()
}
