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
	dotDev("bnDotDev512", false)
	dotDev("bnDotDevReLU512", true)
	scaleShift("scaleShift512", false)
	scaleShift("scaleShiftReLU512", true)
	gradIn("bnGradIn512", false)
	gradIn("bnGradInReLU512", true)
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

// dotDev emits the gradient sums; relu: of dy kept where y, the fused
// ReLU's output, has non-zero bits (dy·(y != 0), as reluGradRef has it).
func dotDev(name string, relu bool) {
	if relu {
		TEXT(name, NOSPLIT, "func(dy, y, x *float32, runs, n, stride int, mean float64) (sum, dot float64)")
		Doc(name + " is bnDotDevReLURef's sums (runs >= 1, n >= 1).")
	} else {
		TEXT(name, NOSPLIT, "func(dy, x *float32, runs, n, stride int, mean float64) (sum, dot float64)")
		Doc(name + " is bnDotDevRef's sums (runs >= 1, n >= 1).")
	}
	Pragma("noescape")
	dy := Load(Param("dy"), GP64())
	ptrs := []Register{dy}
	var y Register
	if relu {
		y = Load(Param("y"), GP64())
		ptrs = append(ptrs, y)
	}
	x := Load(Param("x"), GP64())
	ptrs = append(ptrs, x)
	mean := ZMM()
	VBROADCASTSD(addr("mean"), mean)
	sacc, dacc := zeros(4), zeros(4)
	runs(name, ptrs, func(off Register, masks []Op) {
		for q := range 4 {
			var g VecVirtual
			if relu {
				yv := YMM()
				at := Mem{Base: y, Index: off, Scale: 1, Disp: 32 * q}
				if masks == nil {
					VMOVUPS(at, yv)
				} else {
					VMOVUPS_Z(at, masks[q], yv) // lanes past the run: 0, not kept
				}
				keep := K()
				VPTESTMD(yv, yv, keep)
				g = load8(dy, off, q, []Op{keep, keep, keep, keep})
			} else {
				g = load8(dy, off, q, masks)
			}
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

// reluZ sets v = max(v, 0) as Go's max does (see asm/eltgen.go), with sign
// holding 0x80000000 in every lane.
func reluZ(v, sign VecVirtual) {
	t1, t2 := ZMM(), ZMM()
	VXORPS(sign, v, v)
	VMINPS(sign, v, t1) // sign is -0 as a float
	VMINPS(v, t1, t2)
	VORPS(t1, t2, t2)
	VXORPS(sign, t2, v)
}

// scaleShift emits y = x·a + b; relu: then max(y, 0), the fused ReLU.
func scaleShift(name string, relu bool) {
	TEXT(name, NOSPLIT, "func(y, x *float32, runs, n, stride int, a, b float32)")
	Pragma("noescape")
	if relu {
		Doc(name + " is scaleShiftReLURef (runs >= 1, n >= 1).")
	} else {
		Doc(name + " is scaleShiftRef (runs >= 1, n >= 1).")
	}
	y := Load(Param("y"), GP64())
	x := Load(Param("x"), GP64())
	a, b := ZMM(), ZMM()
	VBROADCASTSS(addr("a"), a)
	VBROADCASTSS(addr("b"), b)
	var sign VecVirtual
	if relu {
		sign = ZMM()
		t := GP32()
		MOVL(U32(0x80000000), t)
		VPBROADCASTD(t, sign)
	}
	runs(name, []Register{y, x}, func(off Register, masks []Op) {
		hm := halves(masks)
		for h := range 2 {
			v, k := f32(x, off, h, hm)
			VMULPS(a, v, v)
			VADDPS(b, v, v)
			if relu {
				reluZ(v, sign)
			}
			store(v, y, off, h, k)
		}
	})
	VZEROUPPER()
	RET()
}

// gradIn emits batch norm's input gradient; relu: of dy kept where y has
// non-zero bits.
func gradIn(name string, relu bool) {
	if relu {
		TEXT(name, NOSPLIT, "func(dx, dy, y, x *float32, runs, n, stride int, gm, mf, k, sf float32)")
		Doc(name + " is bnGradInReLURef (runs >= 1, n >= 1).")
	} else {
		TEXT(name, NOSPLIT, "func(dx, dy, x *float32, runs, n, stride int, gm, mf, k, sf float32)")
		Doc(name + " is bnGradInRef (runs >= 1, n >= 1).")
	}
	Pragma("noescape")
	dx := Load(Param("dx"), GP64())
	dy := Load(Param("dy"), GP64())
	ptrs := []Register{dx, dy}
	var y Register
	if relu {
		y = Load(Param("y"), GP64())
		ptrs = append(ptrs, y)
	}
	x := Load(Param("x"), GP64())
	ptrs = append(ptrs, x)
	gm, mf, kk, sf := ZMM(), ZMM(), ZMM(), ZMM()
	VBROADCASTSS(addr("gm"), gm)
	VBROADCASTSS(addr("mf"), mf)
	VBROADCASTSS(addr("k"), kk)
	VBROADCASTSS(addr("sf"), sf)
	runs(name, ptrs, func(off Register, masks []Op) {
		hm := halves(masks)
		for h := range 2 {
			var g VecVirtual
			var k Op
			if relu {
				var yv VecVirtual
				yv, k = f32(y, off, h, hm)
				keep := K()
				VPTESTMD(yv, yv, keep)
				g, _ = f32(dy, off, h, []Op{keep, nil, keep, nil})
			} else {
				g, k = f32(dy, off, h, hm)
			}
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
