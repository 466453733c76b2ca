//go:build ignore

// Command bngen writes the AVX-512 batch norm kernels of package vec with
// avo: `go generate ./internal/vec` writes bn_amd64.s and bn_stubs_amd64.go.
//
// Every kernel walks `runs` runs of n floats, run r starting at element
// r*stride (one channel's values in a [B, C, S] batch: runs B, n S, stride
// C*S), 32 floats at a time, the last chunk of a run under a mask. The float64
// sums keep 32 lanes (four zmm registers; float i of a run goes to lane i%32)
// and reduce them in the fixed tree of bn.go's reduce32, so the Go reference
// gives the same bits. The float32 kernels do, lane by lane, the Go
// reference's operations in its order, without fused multiply-adds.
package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("!purego")
	sum()
	sqDev()
	dotDev()
	scaleShift()
	gradIn()
	Generate()
}

// runs emits the loop over runs and chunks: ptrs are the runs' base
// pointers (advanced by stride floats per run), body is called with the
// byte offset of a chunk within its run and, for a run's last partial chunk,
// the masks of its four 8-float quarters (nil for a full chunk).
func runs(name string, ptrs []Register, body func(off Register, masks []Op)) {
	nruns := Load(Param("runs"), GP64())
	n := Load(Param("n"), GP64())
	stride := Load(Param("stride"), GP64())
	SHLQ(Imm(2), stride)
	off, left, ones, m := GP64(), GP64(), GP32(), GP32()
	MOVL(U32(0xffffffff), ones)
	Label(name + "_run")
	TESTQ(nruns, nruns)
	JZ(LabelRef(name + "_done"))
	XORQ(off, off)
	MOVQ(n, left)
	// The next run's lines, two a chunk: runs are short (49 to 784 floats)
	// and far apart, too short for the hardware prefetcher to catch up.
	next := make([]Register, len(ptrs))
	for i, p := range ptrs {
		next[i] = GP64()
		LEAQ(Mem{Base: p, Index: stride, Scale: 1}, next[i])
	}
	Label(name + "_chunk")
	CMPQ(left, Imm(32))
	JL(LabelRef(name + "_tail"))
	for _, q := range next {
		PREFETCHT0(Mem{Base: q, Index: off, Scale: 1})
		PREFETCHT0(Mem{Base: q, Index: off, Scale: 1, Disp: 64})
	}
	body(off, nil)
	ADDQ(Imm(128), off)
	SUBQ(Imm(32), left)
	JMP(LabelRef(name + "_chunk"))
	Label(name + "_tail")
	TESTQ(left, left)
	JZ(LabelRef(name + "_next"))
	// m = the low `left` bits; K1..K4 its four bytes.
	for _, q := range next {
		PREFETCHT0(Mem{Base: q, Index: off, Scale: 1})
		PREFETCHT0(Mem{Base: q, Index: off, Scale: 1, Disp: 64})
	}
	BZHIL(left.As32(), ones, m)
	KMOVD(m, K1)
	KSHIFTRD(Imm(8), K1, K2)
	KSHIFTRD(Imm(16), K1, K3)
	KSHIFTRD(Imm(24), K1, K4)
	body(off, []Op{K1, K2, K3, K4})
	Label(name + "_next")
	for _, p := range ptrs {
		ADDQ(stride, p)
	}
	DECQ(nruns)
	JMP(LabelRef(name + "_run"))
	Label(name + "_done")
}

// addr is a scalar parameter's stack slot, for VBROADCASTSS/SD.
func addr(name string) Mem {
	b, err := Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	return b.Addr
}

func zeros(k int) []VecVirtual {
	acc := make([]VecVirtual, k)
	for i := range acc {
		acc[i] = ZMM()
		VXORPD(acc[i], acc[i], acc[i])
	}
	return acc
}

// load8 widens the 8 floats at p+off+32q to float64 (zeros where masked).
func load8(p, off Register, q int, masks []Op) VecVirtual {
	d := ZMM()
	at := Mem{Base: p, Index: off, Scale: 1, Disp: 32 * q}
	if masks == nil {
		VCVTPS2PD(at, d)
	} else {
		VCVTPS2PD_Z(at, masks[q], d)
	}
	return d
}

// minusMean sets d -= mean, zeroing masked lanes.
func minusMean(d, mean VecVirtual, q int, masks []Op) {
	if masks == nil {
		VSUBPD(mean, d, d)
	} else {
		VSUBPD_Z(mean, d, masks[q], d)
	}
}

// reduce sums the 32 lanes of acc as reduce32 does and returns the
// result's register (lane 0 of an xmm).
func reduce(acc []VecVirtual) VecVirtual {
	VADDPD(acc[1], acc[0], acc[0])
	VADDPD(acc[3], acc[2], acc[2])
	VADDPD(acc[2], acc[0], acc[0])
	hi := YMM()
	VEXTRACTF64X4(Imm(1), acc[0], hi)
	y := YMM()
	VADDPD(hi, acc[0].AsY(), y)
	h2 := XMM()
	VEXTRACTF128(Imm(1), y, h2)
	x := XMM()
	VADDPD(h2, y.AsX(), x)
	h3 := XMM()
	VUNPCKHPD(x, x, h3)
	VADDSD(h3, x, x)
	return x
}

func sum() {
	TEXT("bnSum512", NOSPLIT, "func(x *float32, runs, n, stride int) float64")
	Pragma("noescape")
	Doc("bnSum512 is bnSumRef's sum (runs >= 1, n >= 1).")
	x := Load(Param("x"), GP64())
	acc := zeros(4)
	runs("bnSum512", []Register{x}, func(off Register, masks []Op) {
		for q := range 4 {
			VADDPD(load8(x, off, q, masks), acc[q], acc[q])
		}
	})
	Store(reduce(acc), ReturnIndex(0))
	VZEROUPPER()
	RET()
}

func sqDev() {
	TEXT("bnSqDev512", NOSPLIT, "func(x *float32, runs, n, stride int, mean float64) float64")
	Pragma("noescape")
	Doc("bnSqDev512 is bnSqDevRef's sum (runs >= 1, n >= 1).")
	x := Load(Param("x"), GP64())
	mean := ZMM()
	VBROADCASTSD(addr("mean"), mean)
	acc := zeros(4)
	runs("bnSqDev512", []Register{x}, func(off Register, masks []Op) {
		for q := range 4 {
			d := load8(x, off, q, masks)
			minusMean(d, mean, q, masks)
			VMULPD(d, d, d)
			VADDPD(d, acc[q], acc[q])
		}
	})
	Store(reduce(acc), ReturnIndex(0))
	VZEROUPPER()
	RET()
}

func dotDev() {
	TEXT("bnDotDev512", NOSPLIT, "func(dy, x *float32, runs, n, stride int, mean float64) (sum, dot float64)")
	Pragma("noescape")
	Doc("bnDotDev512 is bnDotDevRef's sums (runs >= 1, n >= 1).")
	dy := Load(Param("dy"), GP64())
	x := Load(Param("x"), GP64())
	mean := ZMM()
	VBROADCASTSD(addr("mean"), mean)
	sacc, dacc := zeros(4), zeros(4)
	runs("bnDotDev512", []Register{dy, x}, func(off Register, masks []Op) {
		for q := range 4 {
			g := load8(dy, off, q, masks)
			VADDPD(g, sacc[q], sacc[q])
			d := load8(x, off, q, masks)
			minusMean(d, mean, q, masks)
			VMULPD(d, g, d)
			VADDPD(d, dacc[q], dacc[q])
		}
	})
	Store(reduce(sacc), ReturnIndex(0))
	Store(reduce(dacc), ReturnIndex(1))
	VZEROUPPER()
	RET()
}

// f32 loads 16 floats (half h of a chunk) and returns the register and the
// mask of the half (nil when full).
func f32(p, off Register, h int, masks []Op) (VecVirtual, Op) {
	v := ZMM()
	at := Mem{Base: p, Index: off, Scale: 1, Disp: 64 * h}
	if masks == nil {
		VMOVUPS(at, v)
		return v, nil
	}
	VMOVUPS_Z(at, masks[2*h], v)
	return v, masks[2*h]
}

func store(v VecVirtual, p, off Register, h int, k Op) {
	at := Mem{Base: p, Index: off, Scale: 1, Disp: 64 * h}
	if k == nil {
		VMOVUPS(v, at)
	} else {
		VMOVUPS(v, k, at)
	}
}

// halves turns the four byte masks into two 16-bit ones (K1 and K3 hold
// bits 0-31 and 16-31 already: KSHIFTRD leaves the higher bits).
func halves(masks []Op) []Op {
	if masks == nil {
		return nil
	}
	return []Op{K1, nil, K3, nil}
}

func scaleShift() {
	TEXT("scaleShift512", NOSPLIT, "func(y, x *float32, runs, n, stride int, a, b float32)")
	Pragma("noescape")
	Doc("scaleShift512 is scaleShiftRef (runs >= 1, n >= 1).")
	y := Load(Param("y"), GP64())
	x := Load(Param("x"), GP64())
	a, b := ZMM(), ZMM()
	VBROADCASTSS(addr("a"), a)
	VBROADCASTSS(addr("b"), b)
	runs("scaleShift512", []Register{y, x}, func(off Register, masks []Op) {
		hm := halves(masks)
		for h := range 2 {
			v, k := f32(x, off, h, hm)
			VMULPS(a, v, v)
			VADDPS(b, v, v)
			store(v, y, off, h, k)
		}
	})
	VZEROUPPER()
	RET()
}

func gradIn() {
	TEXT("bnGradIn512", NOSPLIT, "func(dx, dy, x *float32, runs, n, stride int, gm, mf, k, sf float32)")
	Pragma("noescape")
	Doc("bnGradIn512 is bnGradInRef (runs >= 1, n >= 1).")
	dx := Load(Param("dx"), GP64())
	dy := Load(Param("dy"), GP64())
	x := Load(Param("x"), GP64())
	gm, mf, kk, sf := ZMM(), ZMM(), ZMM(), ZMM()
	VBROADCASTSS(addr("gm"), gm)
	VBROADCASTSS(addr("mf"), mf)
	VBROADCASTSS(addr("k"), kk)
	VBROADCASTSS(addr("sf"), sf)
	runs("bnGradIn512", []Register{dx, dy, x}, func(off Register, masks []Op) {
		hm := halves(masks)
		for h := range 2 {
			g, k := f32(dy, off, h, hm)
			v, _ := f32(x, off, h, hm)
			VSUBPS(gm, g, g)
			VSUBPS(mf, v, v)
			VMULPS(kk, v, v)
			VSUBPS(v, g, g)
			VMULPS(sf, g, g)
			store(g, dx, off, h, k)
		}
	})
	VZEROUPPER()
	RET()
}
