//go:build ignore

// Command gen writes the AVX2 Adam update of package vec with avo:
// `go generate ./internal/vec` writes adam_amd64.s and adam_stubs_amd64.go.
//
// The kernel performs, 8 floats at a time, exactly the scalar update in
// adam.go, operation by operation and without fused multiply-adds, so the
// two give bit-identical weights (IEEE division and square root are
// correctly rounded in both).
package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("!purego")
	adam("adamAVX2", false)
	adam("adamMaskedAVX2", true)
	Generate()
}

// adam emits func(n int, w, grad, m, v, mask, c *float32) for n a
// multiple of 8; mask is read only by the masked variant.
func adam(name string, masked bool) {
	TEXT(name, NOSPLIT, "func(n int, w, grad, m, v, mask, c *float32)")
	// The kernel keeps no pointer: without this, &consts escapes and every step allocates.
	Pragma("noescape")
	Doc(name + " applies Adam to n (a multiple of 8) parameters; see adamScalar.")
	n := Load(Param("n"), GP64())
	w := Load(Param("w"), GP64())
	g := Load(Param("grad"), GP64())
	m := Load(Param("m"), GP64())
	v := Load(Param("v"), GP64())
	mk := Load(Param("mask"), GP64())
	c := Load(Param("c"), GP64())
	// Consts field order: B1, OneMinusB1, B2, OneMinusB2, WeightDecay, Eps, StepSize, Bc2Sqrt.
	consts := make([]VecVirtual, 8)
	for i := range consts {
		consts[i] = YMM()
		VBROADCASTSS(Mem{Base: c, Disp: 4 * i}, consts[i])
	}
	b1, ob1, b2, ob2, wd, eps, step, bc2 := consts[0], consts[1], consts[2], consts[3], consts[4], consts[5], consts[6], consts[7]

	Label(name + "_loop")
	CMPQ(n, Imm(8))
	JL(LabelRef(name + "_done"))
	W, G, M, V, T, S := YMM(), YMM(), YMM(), YMM(), YMM(), YMM()
	VMOVUPS(Mem{Base: w}, W)
	VMOVUPS(Mem{Base: g}, G)
	// gj := g + wd*w (then * mask)
	VMULPS(wd, W, T)
	VADDPS(T, G, G)
	if masked {
		VMULPS(Mem{Base: mk}, G, G)
	}
	// m = b1*m + (1-b1)*gj
	VMOVUPS(Mem{Base: m}, M)
	VMULPS(b1, M, M)
	VMULPS(ob1, G, T)
	VADDPS(T, M, M)
	VMOVUPS(M, Mem{Base: m})
	// v = b2*v + ((1-b2)*gj)*gj
	VMOVUPS(Mem{Base: v}, V)
	VMULPS(b2, V, V)
	VMULPS(ob2, G, T)
	VMULPS(G, T, T)
	VADDPS(T, V, V)
	VMOVUPS(V, Mem{Base: v})
	// w -= (step*m) / (sqrt(v)/bc2 + eps)
	VSQRTPS(V, S)
	VDIVPS(bc2, S, S)
	VADDPS(eps, S, S)
	VMULPS(step, M, T)
	VDIVPS(S, T, T)
	VSUBPS(T, W, W)
	VMOVUPS(W, Mem{Base: w})

	for _, p := range []Register{w, g, m, v} {
		ADDQ(Imm(32), p)
	}
	if masked {
		ADDQ(Imm(32), mk)
	}
	SUBQ(Imm(8), n)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	VZEROUPPER()
	RET()
}
