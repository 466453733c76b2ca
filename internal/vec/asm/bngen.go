//go:build ignore

// Command bngen writes the AVX-512 batch norm kernels of package vec with
// avo: `go generate ./internal/vec` writes bn_amd64.s and bn_stubs_amd64.go.
//
// Every kernel walks `runs` runs of n floats, run r starting at element
// r*stride (one channel's values in a [B, C, S] batch: runs B, n S, stride
// C*S). The float64 sums add in the Go reference's order (bn.go): a run's
// interleaved partial sums are the lanes of one register (four for the sums
// of x, two each for the gradient's), four runs at a time in independent
// registers, and each run's result goes to the total in run order. The
// float32 kernels go 32 floats at a time, the last chunk of a run under a
// mask, and do, lane by lane, the Go reference's operations in its order,
// without fused multiply-adds.
package main

import (
	"fmt"

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

// group is how many runs the sums take at once, in independent registers:
// enough to hide the adds' latency (each run's partial sums are one chain).
// unroll is how many steps of a run the loop takes at once.
const group, unroll = 4, 4

// sums emits the loop of the float64 sums over the runs of the arrays ptrs,
// group runs at a time (then one at a time), `step` floats of a run a step:
// vec(k, at) adds the step of run k (at(p, disp) addresses it in array p),
// tail(k, at) the next of the n%step values left, and done(k) adds run k's
// result to the totals; start(k) zeroes run k's partial sums. wide, when not
// nil, replaces vec for a whole group (its runs' partial sums side by side in
// one register; at(r) addresses run r), and split then hands them to the
// registers vec's would be in, for tail and done.
func sums(name string, ptrs []Register, step int, start, done func(k int), vec, tail func(k int, at func(p Register, disp int) Mem), wide func(at func(r int) func(p Register, disp int) Mem, disp int), split func()) {
	nruns := Load(Param("runs"), GP64())
	n := Load(Param("n"), GP64())
	stride := Load(Param("stride"), GP64())
	SHLQ(Imm(2), stride)
	s3 := GP64()
	LEAQ(Mem{Base: stride, Index: stride, Scale: 2}, s3)
	steps, rest := GP64(), GP64()
	MOVQ(n, steps)
	SHRQ(Imm(uint64(log2(step))), steps)
	MOVQ(n, rest)
	ANDQ(Imm(uint64(step-1)), rest)
	// back moves the pointers from the end of a group's first run to the
	// start of the next group's.
	back := GP64()
	MOVQ(n, back)
	SHLQ(Imm(2), back)
	NEGQ(back)
	one := GP32()
	MOVL(U32(1), one)
	KMOVW(one, K1) // lane 0: the tail's partial sum
	for _, k := range []int{group, 1} {
		g := fmt.Sprintf("%s_g%d", name, k)
		adv := GP64()
		if k == group {
			LEAQ(Mem{Base: back, Index: stride, Scale: 4}, adv)
		} else {
			LEAQ(Mem{Base: back, Index: stride, Scale: 1}, adv)
		}
		Label(g)
		CMPQ(nruns, Imm(uint64(k)))
		JL(LabelRef(g + "_end"))
		at := func(r int) func(p Register, disp int) Mem {
			return func(p Register, disp int) Mem {
				switch r {
				case 0:
					return Mem{Base: p, Disp: disp}
				case 1:
					return Mem{Base: p, Index: stride, Scale: 1, Disp: disp}
				case 2:
					return Mem{Base: p, Index: stride, Scale: 2, Disp: disp}
				}
				return Mem{Base: p, Index: s3, Scale: 1, Disp: disp}
			}
		}
		for r := range k {
			start(r)
		}
		// unroll steps at a time (64 bytes of every array for the sums of x,
		// 32 for the gradient's), prefetching the next runs' lines: runs of
		// 49-784 floats a channel stride apart defeat the hardware prefetcher.
		left, pf := GP64(), GP64()
		MOVQ(steps, left)
		Label(g + "_unrolled")
		CMPQ(left, Imm(uint64(unroll)))
		JL(LabelRef(g + "_step"))
		for _, p := range ptrs {
			if k == 1 {
				PREFETCHT0(Mem{Base: p, Index: stride, Scale: 1})
				continue
			}
			LEAQ(Mem{Base: p, Index: stride, Scale: 4}, pf)
			for r := range k {
				PREFETCHT0(at(r)(pf, 0))
			}
		}
		for u := range unroll {
			if wide != nil && k == group {
				wide(at, 4*step*u)
				continue
			}
			for r := range k {
				vec(r, func(p Register, disp int) Mem { return at(r)(p, disp+4*step*u) })
			}
		}
		for _, p := range ptrs {
			ADDQ(Imm(uint64(4*step*unroll)), p)
		}
		SUBQ(Imm(uint64(unroll)), left)
		JMP(LabelRef(g + "_unrolled"))
		Label(g + "_step")
		TESTQ(left, left)
		JZ(LabelRef(g + "_tail"))
		if wide != nil && k == group {
			wide(at, 0)
		} else {
			for r := range k {
				vec(r, at(r))
			}
		}
		for _, p := range ptrs {
			ADDQ(Imm(uint64(4*step)), p)
		}
		DECQ(left)
		JMP(LabelRef(g + "_step"))
		Label(g + "_tail")
		if wide != nil && k == group {
			split()
		}
		MOVQ(rest, left)
		Label(g + "_tail1")
		TESTQ(left, left)
		JZ(LabelRef(g + "_done"))
		for r := range k {
			tail(r, at(r))
		}
		for _, p := range ptrs {
			ADDQ(Imm(4), p)
		}
		DECQ(left)
		JMP(LabelRef(g + "_tail1"))
		Label(g + "_done")
		for r := range k {
			done(r)
		}
		for _, p := range ptrs {
			ADDQ(adv, p)
		}
		SUBQ(Imm(uint64(k)), nruns)
		JMP(LabelRef(g))
		Label(g + "_end")
	}
}

func log2(v int) int {
	l := 0
	for ; v > 1; v >>= 1 {
		l++
	}
	return l
}

// zero returns k zeroed ymm registers.
func zero(k int) []VecVirtual {
	r := make([]VecVirtual, k)
	for i := range r {
		r[i] = YMM()
	}
	return r
}

// add4 adds a run's four partial sums acc as (s0+s1)+(s2+s3) to total.
func add4(acc, total VecVirtual) {
	hi, t, h := XMM(), XMM(), XMM()
	VEXTRACTF128(Imm(1), acc, hi)
	VHADDPD(hi, acc.AsX(), t) // s0+s1, s2+s3
	VUNPCKHPD(t, t, h)
	VADDSD(h, t, t)
	VADDSD(t, total, total)
}

// add2 adds a run's two partial sums acc (an xmm) as s0+s1 to total.
func add2(acc, total VecVirtual) {
	h := XMM()
	VUNPCKHPD(acc, acc, h)
	VADDSD(h, acc, h)
	VADDSD(h, total, total)
}

func sum() {
	TEXT("bnSum512", NOSPLIT, "func(x *float32, runs, n, stride int) float64")
	Pragma("noescape")
	Doc("bnSum512 is bnSumRef's sum (runs >= 1, n >= 1).")
	x := Load(Param("x"), GP64())
	total := XMM()
	VXORPD(total, total, total)
	acc := zero(group)
	sums("bnSum512", []Register{x}, 4,
		func(k int) { VXORPD(acc[k], acc[k], acc[k]) },
		func(k int) { add4(acc[k], total) },
		func(k int, at func(Register, int) Mem) {
			v := YMM()
			VCVTPS2PD(at(x, 0), v)
			VADDPD(v, acc[k], acc[k])
		},
		func(k int, at func(Register, int) Mem) {
			v := XMM()
			VCVTSS2SD(at(x, 0), v, v)
			VADDPD(v.AsY(), acc[k], K1, acc[k])
		}, nil, nil)
	Store(total, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

func sqDev() {
	TEXT("bnSqDev512", NOSPLIT, "func(x *float32, runs, n, stride int, mean float64) float64")
	Pragma("noescape")
	Doc("bnSqDev512 is bnSqDevRef's sum (runs >= 1, n >= 1).")
	x := Load(Param("x"), GP64())
	mean := YMM()
	VBROADCASTSD(addr("mean"), mean)
	total := XMM()
	VXORPD(total, total, total)
	acc := zero(group)
	sums("bnSqDev512", []Register{x}, 4,
		func(k int) { VXORPD(acc[k], acc[k], acc[k]) },
		func(k int) { add4(acc[k], total) },
		func(k int, at func(Register, int) Mem) {
			d := YMM()
			VCVTPS2PD(at(x, 0), d)
			VSUBPD(mean, d, d)
			VMULPD(d, d, d)
			VADDPD(d, acc[k], acc[k])
		},
		func(k int, at func(Register, int) Mem) {
			d := XMM()
			VCVTSS2SD(at(x, 0), d, d)
			VSUBSD(mean.AsX(), d, d)
			VMULSD(d, d, d)
			VADDPD(d.AsY(), acc[k], K1, acc[k])
		}, nil, nil)
	Store(total, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

// dotDev emits the gradient sums; relu: of dy kept where y, the fused
// ReLU's output, has non-zero bits (dy·(y != 0), as ReLUGrad has it).
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
	mean := XMM()
	VMOVDDUP(addr("mean"), mean)
	sum, dot := XMM(), XMM()
	VXORPD(sum, sum, sum)
	VXORPD(dot, dot, dot)
	sacc, dacc := make([]VecVirtual, group), make([]VecVirtual, group)
	for i := range sacc {
		sacc[i], dacc[i] = XMM(), XMM()
	}
	// grad loads m floats of dy (2: a step, 1: a tail value) as float64,
	// masked by the ReLU: zero where y's bits are zero.
	grad := func(at func(Register, int) Mem, m int) VecVirtual {
		g := XMM()
		if !relu {
			if m == 2 {
				VCVTPS2PD(at(dy, 0), g)
			} else {
				VCVTSS2SD(at(dy, 0), g, g)
			}
			return g
		}
		yv := XMM()
		if m == 2 {
			VMOVSD(at(y, 0), yv)
		} else {
			VMOVSS(at(y, 0), yv)
		}
		keep := K()
		VPTESTMD(yv, yv, keep)
		if m == 2 {
			VCVTPS2PD_Z(at(dy, 0), keep, g)
		} else {
			VMOVSS(at(dy, 0), yv)
			VCVTPS2PD_Z(yv, keep, g)
		}
		return g
	}
	// The group's four runs side by side: lanes 2r and 2r+1 hold run r's
	// partial sums.
	meanZ, swide, dwide := ZMM(), ZMM(), ZMM()
	VBROADCASTSD(addr("mean"), meanZ)
	// gather loads the group's next two floats of array p (at disp) as 8
	// float32s.
	gather := func(at func(r int) func(Register, int) Mem, p Register, disp int) VecVirtual {
		lo, hi := XMM(), XMM()
		VMOVSD(at(0)(p, disp), lo)
		VMOVHPS(at(1)(p, disp), lo, lo)
		VMOVSD(at(2)(p, disp), hi)
		VMOVHPS(at(3)(p, disp), hi, hi)
		v := YMM()
		VINSERTF128(Imm(1), hi, lo.AsY(), v)
		return v
	}
	wide := func(at func(r int) func(Register, int) Mem, disp int) {
		g := ZMM()
		if relu {
			yv := gather(at, y, disp)
			keep := K()
			VPTESTMD(yv, yv, keep)
			VCVTPS2PD_Z(gather(at, dy, disp), keep, g)
		} else {
			VCVTPS2PD(gather(at, dy, disp), g)
		}
		VADDPD(g, swide, swide)
		d := ZMM()
		VCVTPS2PD(gather(at, x, disp), d)
		VSUBPD(meanZ, d, d)
		VMULPD(d, g, d)
		VADDPD(d, dwide, dwide)
	}
	split := func() {
		for r := range group {
			VEXTRACTF64X2(Imm(uint64(r)), swide, sacc[r])
			VEXTRACTF64X2(Imm(uint64(r)), dwide, dacc[r])
		}
	}
	sums(name, ptrs, 2,
		func(k int) {
			VXORPD(sacc[k], sacc[k], sacc[k])
			VXORPD(dacc[k], dacc[k], dacc[k])
			if k == 0 {
				VXORPD(swide, swide, swide)
				VXORPD(dwide, dwide, dwide)
			}
		},
		func(k int) {
			add2(sacc[k], sum)
			add2(dacc[k], dot)
		},
		func(k int, at func(Register, int) Mem) {
			g := grad(at, 2)
			VADDPD(g, sacc[k], sacc[k])
			d := XMM()
			VCVTPS2PD(at(x, 0), d)
			VSUBPD(mean, d, d)
			VMULPD(d, g, d)
			VADDPD(d, dacc[k], dacc[k])
		},
		func(k int, at func(Register, int) Mem) {
			g := grad(at, 1)
			VADDPD(g, sacc[k], K1, sacc[k])
			d := XMM()
			VCVTSS2SD(at(x, 0), d, d)
			VSUBSD(mean, d, d)
			VMULSD(d, g, d)
			VADDPD(d, dacc[k], K1, dacc[k])
		}, wide, split)
	Store(sum, ReturnIndex(0))
	Store(dot, ReturnIndex(1))
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
