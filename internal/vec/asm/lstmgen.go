//go:build ignore

// Command lstmgen writes the AVX2 LSTM cell of package vec with avo:
// `go generate ./internal/vec` writes lstm_amd64.s and lstm_stubs_amd64.go.
//
// The kernel performs, 8 lanes at a time, exactly the operations of
// LSTMCell's Go loop (Exp, Sigmoid, Tanh in lstm.go), in the same order and
// without fused multiply-adds, so the two give the same bits. Constants are
// read from a table of 16-lane rows (cellConsts), since they outnumber the
// registers. The AVX-512 kernel is the same on 16 lanes.
package main

import (
	"fmt"

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

var (
	consts Register
	wide   bool // AVX-512: zmm registers, mask registers for the blend
)

func k(i int) Mem { return Mem{Base: consts, Disp: 64 * i} }

// vec is a new vector register of the kernel's width.
func vec() VecVirtual {
	if wide {
		return ZMM()
	}
	return YMM()
}

// and, or and xor are the bitwise ops (AVX-512F has them on dwords only).
func and(a, b, dst Op) {
	if wide {
		VPANDD(a, b, dst)
	} else {
		VANDPS(a, b, dst)
	}
}

func or(a, b, dst Op) {
	if wide {
		VPORD(a, b, dst)
	} else {
		VORPS(a, b, dst)
	}
}

func xor(a, b, dst Op) {
	if wide {
		VPXORD(a, b, dst)
	} else {
		VXORPS(a, b, dst)
	}
}

func main() {
	ConstraintExpr("!purego")
	wide = false
	cell("lstmCellAVX2", 8)
	wide = true
	cell("lstmCellAVX512", 16)
	wide = false
	cellGrad("lstmCellGradAVX2", 8)
	wide = true
	cellGrad("lstmCellGradAVX512", 16)
	wide = false
	minMax()
	Generate()
}

// exp returns e^x (x is left unchanged).
func exp(x VecVirtual) VecVirtual {
	r := vec()
	VMAXPS(k(cLo), x, r)
	VMINPS(k(cHi), r, r)
	t, n := vec(), vec()
	VMULPS(k(cLog2e), r, t)
	if wide {
		VRNDSCALEPS(Imm(8), t, n) // to nearest integer, ties to even; no precision exception
	} else {
		VROUNDPS(Imm(8), t, n)
	}
	VMULPS(k(cC1), n, t)
	VSUBPS(t, r, r)
	VMULPS(k(cC2), n, t)
	VSUBPS(t, r, r)
	zz, y := vec(), vec()
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
	nx := vec()
	xor(k(cSign), x, nx)
	e := exp(nx)
	VADDPS(k(cOne), e, e)
	r := vec()
	VMOVUPS(k(cOne), r)
	VDIVPS(e, r, r)
	return r
}

// tanh returns tanh x: the polynomial where |x| < 0.625, else
// copysign(1 - 2/(e^2|x| + 1), x).
func tanh(x VecVirtual) VecVirtual {
	a := vec()
	and(k(cAbs), x, a)
	zz, p := vec(), vec()
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

	a2 := vec()
	VADDPS(a, a, a2)
	e := exp(a2)
	VADDPS(k(cOne), e, e)
	q := vec()
	VMOVUPS(k(cTwo), q)
	VDIVPS(e, q, q)
	r := vec()
	VMOVUPS(k(cOne), r)
	VSUBPS(q, r, r)
	s := vec()
	and(k(cSign), x, s)
	or(s, r, r)

	// Where |x| < 0.625 (LT_OS), the polynomial.
	if wide {
		m := K()
		VCMPPS(Imm(1), k(cSmall), a, m)
		VBLENDMPS(p, r, m, r)
		return r
	}
	m := YMM()
	VCMPPS(Imm(1), k(cSmall), a, m)
	VBLENDVPS(m, p, r, r)
	return r
}

func cell(name string, lanes int) {
	TEXT(name, NOSPLIT, "func(n, hs int, z, cprev, c, tc, h, consts *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is LSTMCell on the first n (a multiple of %d) of each gate's hs values.", name, lanes))
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

	Label(name + "_loop")
	CMPQ(n, Imm(uint64(lanes)))
	JL(LabelRef(name + "_done"))
	gate := func(off Register, act func(VecVirtual) VecVirtual) VecVirtual {
		addr := Mem{Base: z}
		if off != nil {
			addr = Mem{Base: z, Index: off, Scale: 1}
		}
		x := vec()
		VMOVUPS(addr, x)
		y := act(x)
		VMOVUPS(y, addr)
		return y
	}
	i := gate(nil, sigmoid)
	g := gate(s2, tanh)
	ig := vec()
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
		ADDQ(Imm(uint64(4*lanes)), p)
	}
	SUBQ(Imm(uint64(lanes)), n)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// minMax emits func(n int, x *float32, out *[2]float32): the least and
// greatest of n (a multiple of 8, at least 8) values, as 8 lanes reduced.
func minMax() {
	TEXT("minMaxAVX2", NOSPLIT, "func(n int, x *float32, out *[2]float32)")
	Pragma("noescape")
	Doc("minMaxAVX2 writes the least and greatest of x's first n (a multiple of 8, at least 8) values to out.")
	n := Load(Param("n"), GP64())
	x := Load(Param("x"), GP64())
	out := Load(Param("out"), GP64())
	lo, hi := YMM(), YMM()
	VMOVUPS(Mem{Base: x}, lo)
	VMOVUPS(lo, hi)
	ADDQ(Imm(32), x)
	SUBQ(Imm(8), n)
	Label("minmax_loop")
	CMPQ(n, Imm(8))
	JL(LabelRef("minmax_reduce"))
	v := YMM()
	VMOVUPS(Mem{Base: x}, v)
	VMINPS(v, lo, lo)
	VMAXPS(v, hi, hi)
	ADDQ(Imm(32), x)
	SUBQ(Imm(8), n)
	JMP(LabelRef("minmax_loop"))
	Label("minmax_reduce")
	// 8 lanes to 1: halves, then pairs, then neighbours.
	for _, r := range []struct {
		acc VecVirtual
		op  func(...Op)
	}{{lo, VMINPS}, {hi, VMAXPS}} {
		t := YMM()
		VEXTRACTF128(Imm(1), r.acc, t.AsX())
		r.op(t.AsX(), r.acc.AsX(), r.acc.AsX())
		VPERMILPS(Imm(0x4e), r.acc.AsX(), t.AsX())
		r.op(t.AsX(), r.acc.AsX(), r.acc.AsX())
		VPERMILPS(Imm(0xb1), r.acc.AsX(), t.AsX())
		r.op(t.AsX(), r.acc.AsX(), r.acc.AsX())
	}
	VMOVSS(lo.AsX(), Mem{Base: out})
	VMOVSS(hi.AsX(), Mem{Base: out, Disp: 4})
	VZEROUPPER()
	RET()
}

// cellGrad emits LSTMCellGrad's loop on lanes values at a time, its
// operations in the Go loop's order.
func cellGrad(name string, lanes int) {
	TEXT(name, NOSPLIT, "func(n, hs int, gates, cprev, tc, dy, dh, dc, dz, consts *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is LSTMCellGrad on the first n (a multiple of %d) of each gate's hs values.", name, lanes))
	n := Load(Param("n"), GP64())
	hs := Load(Param("hs"), GP64())
	gp := Load(Param("gates"), GP64())
	cp := Load(Param("cprev"), GP64())
	tcp := Load(Param("tc"), GP64())
	dyp := Load(Param("dy"), GP64())
	dhp := Load(Param("dh"), GP64())
	dcp := Load(Param("dc"), GP64())
	dzp := Load(Param("dz"), GP64())
	consts = Load(Param("consts"), GP64())
	s2, s3 := GP64(), GP64()
	SHLQ(Imm(2), hs)
	LEAQ(Mem{Base: hs, Index: hs, Scale: 1}, s2)
	LEAQ(Mem{Base: s2, Index: hs, Scale: 1}, s3)

	Label(name + "_loop")
	CMPQ(n, Imm(uint64(lanes)))
	JL(LabelRef(name + "_done"))
	at := func(base Register, off Register) Mem {
		if off == nil {
			return Mem{Base: base}
		}
		return Mem{Base: base, Index: off, Scale: 1}
	}
	load := func(m Mem) VecVirtual {
		v := vec()
		VMOVUPS(m, v)
		return v
	}
	// oneMinus returns 1 - x.
	oneMinus := func(x VecVirtual) VecVirtual {
		r := load(k(cOne))
		VSUBPS(x, r, r)
		return r
	}
	o, t := load(at(gp, s3)), load(Mem{Base: tcp})
	dh := load(Mem{Base: dyp})
	VADDPS(Mem{Base: dhp}, dh, dh) // dhj = dy + dh
	// dcj = dc + (dhj*o)*(1 - t*t)
	t2 := vec()
	VMULPS(t, t, t2)
	u := oneMinus(t2)
	a := vec()
	VMULPS(o, dh, a)
	VMULPS(u, a, a)
	dc := load(Mem{Base: dcp})
	VADDPS(a, dc, dc)
	// do = ((dhj*t)*o)*(1 - o)
	p := vec()
	VMULPS(t, dh, p)
	VMULPS(o, p, p)
	VMULPS(oneMinus(o), p, p)
	VMOVUPS(p, at(dzp, s3))
	// di = ((dcj*g)*i)*(1 - i)
	i, g := load(Mem{Base: gp}), load(at(gp, s2))
	VMULPS(g, dc, p)
	VMULPS(i, p, p)
	VMULPS(oneMinus(i), p, p)
	VMOVUPS(p, Mem{Base: dzp})
	// df = ((dcj*cprev)*f)*(1 - f)
	f := load(at(gp, hs))
	VMULPS(Mem{Base: cp}, dc, p)
	VMULPS(f, p, p)
	VMULPS(oneMinus(f), p, p)
	VMOVUPS(p, at(dzp, hs))
	// dg = (dcj*i)*(1 - g*g)
	VMULPS(g, g, t2)
	VMULPS(i, dc, p)
	VMULPS(oneMinus(t2), p, p)
	VMOVUPS(p, at(dzp, s2))
	// dc = dcj*f
	VMULPS(f, dc, dc)
	VMOVUPS(dc, Mem{Base: dcp})

	for _, r := range []Register{gp, cp, tcp, dyp, dhp, dcp, dzp} {
		ADDQ(Imm(uint64(4*lanes)), r)
	}
	SUBQ(Imm(uint64(lanes)), n)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	VZEROUPPER()
	RET()
}
