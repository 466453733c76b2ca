//go:build ignore

// Command gen writes the AVX-512 kernels of package sparse with avo.
//
// Run it through `go generate ./internal/sparse` (see the directive in
// sparse.go); it writes kernel_amd64.s and kernel_stubs_amd64.go.
//
// The format (see format.go): rows in slices of 16, one per vector lane;
// columns in chunks of 32; per slice, iterations of 16 entries (lane r: a
// column offset within the chunk, 0..31, and a value, or 0 and 0). A
// chunk of x is two zmm registers, and VPERMI2PS picks each lane's x
// value from them by its offset: a gather from registers. Each slice is
// two runs of iterations, both a multiple of 4 long, so the loops are
// unrolled by 4 without remainders and without branches that depend on
// the data: the whole chunks, each iteration naming its chunk (whose
// halves are loaded again, from L1), then the partial last chunk, whose
// halves are loaded once per call, masked.
//
// Summation order, which format.go's Go kernel repeats: lane r of a slice
// keeps four sums, the slice's i-th iteration adding to sum i mod 4, each
// a chain of rounded adds of rounded products (no FMA, so Go can match it
// bit for bit); the row's result is (a0 + a1) + (a2 + a3), then times its
// scale (int8 values), then plus its bias.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Offsets of the fields of kernelArgs (format.go), all 8 bytes wide.
const (
	offSlices = 8 * iota
	offRuns
	offOff
	offIdx
	offVal
	offScale
	offX
	offLdx
	offLast
	offXMask
	offBias
	offY
	offLdy
	offYMask
)

func main() {
	ConstraintExpr("!purego")
	kernel("spmmF32x1", 1, false)
	kernel("spmmF32x4", 4, false)
	kernel("spmmI8x1", 1, true)
	kernel("spmmI8x4", 4, true)
	Generate()
}

// kernel emits func(p *byte), p a *kernelArgs, which computes
// y = x·Wᵀ (+ bias) for nb rows of x (ldx floats apart) into nb rows of y
// (ldy floats apart). With int8 the values are int8, converted with
// VPMOVSXBD and VCVTDQ2PS, and each row's sum is multiplied by its scale.
func kernel(name string, nb int, int8v bool) {
	TEXT(name, NOSPLIT, "func(p *byte)")
	Pragma("noescape")
	kind := "float32"
	if int8v {
		kind = "int8 (times each row's scale)"
	}
	Doc(fmt.Sprintf("%s computes y = x·Wᵀ + bias for %d row(s) of x, W's values %s; see kernelArgs.", name, nb, kind))

	// Registers: four sums and a chunk (two halves) per row of x, then
	// the offsets, the values and a copy of the offsets.
	acc := func(b, u int) VecPhysical { return zmm[4*b+u] }
	lo := func(b int) VecPhysical { return zmm[4*nb+2*b] }
	hi := func(b int) VecPhysical { return zmm[4*nb+2*b+1] }
	idx := zmm[6*nb]
	val := zmm[6*nb+1]
	tmp := zmm[6*nb+2]
	if 6*nb+3 > 32 {
		panic(name)
	}

	args := Load(Param("p"), GP64())
	field := func(off int) Mem { return Mem{Base: args, Disp: off} }
	slices, runs, op, ip, vp := GP64(), GP64(), GP64(), GP64(), GP64()
	MOVQ(field(offSlices), slices)
	MOVQ(field(offRuns), runs)
	MOVQ(field(offOff), op)
	MOVQ(field(offIdx), ip)
	MOVQ(field(offVal), vp)
	ldx := GP64()
	MOVQ(field(offLdx), ldx)
	SHLQ(U8(2), ldx)
	xrows := make([]Register, nb) // each row of x
	for b := range xrows {
		xrows[b] = GP64()
		if b == 0 {
			MOVQ(field(offX), xrows[0])
		} else {
			LEAQ(Mem{Base: xrows[b-1], Index: ldx, Scale: 1}, xrows[b])
		}
	}
	// K2, K3: the lanes of the last, partial chunk (low and high half);
	// K4: the lanes of the slice being stored (all but in the last slice).
	t := GP64()
	MOVQ(field(offXMask), t)
	KMOVW(t.As32(), K2)
	SHRQ(U8(16), t)
	KMOVW(t.As32(), K3)
	MOVL(U32(0xffff), t.As32())
	KMOVW(t.As32(), K4)
	yoff := GP64() // byte offset of the slice's outputs in a row of y
	XORQ(yoff, yoff)

	valBytes := 64
	if int8v {
		valBytes = 16
	}
	// iteration u of a step of four adds its products to the sums a[u].
	iteration := func(u int) {
		VPMOVZXBD(Mem{Base: ip, Disp: 16 * u}, idx)
		if int8v {
			VPMOVSXBD(Mem{Base: vp, Disp: valBytes * u}, val)
			VCVTDQ2PS(val, val)
		} else if nb > 1 {
			VMOVUPS(Mem{Base: vp, Disp: valBytes * u}, val)
		}
		for b := 0; b < nb; b++ {
			x := idx
			if nb > 1 {
				x = tmp
				VMOVDQA32(idx, x)
			}
			VPERMI2PS(hi(b), lo(b), x) // x[lane] = chunk[offset[lane]]
			if int8v || nb > 1 {
				VMULPS(val, x, x)
			} else {
				VMULPS(Mem{Base: vp, Disp: valBytes * u}, x, x)
			}
			VADDPS(x, acc(b, u), acc(b, u))
		}
	}
	n, co := GP64(), GP64()
	step := func() {
		ADDQ(U8(64), ip)
		ADDQ(U32(4*valBytes), vp)
		SUBQ(U8(4), n)
	}

	Label(name + "_slice")
	TESTQ(slices, slices)
	JZ(LabelRef(name + "_done"))
	CMPQ(slices, U8(1))
	JNE(LabelRef(name + "_zero"))
	KMOVW(field(offYMask), K4)
	Label(name + "_zero")
	for b := 0; b < nb; b++ {
		for u := 0; u < 4; u++ {
			VPXORD(acc(b, u), acc(b, u), acc(b, u))
		}
	}

	// Whole chunks: four iterations per step, two pairs that each load
	// their chunk of every row once.
	MOVL(Mem{Base: runs}, n.As32())
	Label(name + "_whole")
	TESTQ(n, n)
	JZ(LabelRef(name + "_lastrun"))
	for u := 0; u < 4; u++ {
		if u%2 == 0 {
			MOVL(Mem{Base: op, Disp: 2 * u}, co.As32())
			for b := 0; b < nb; b++ {
				VMOVUPS(Mem{Base: xrows[b], Index: co, Scale: 1}, lo(b))
				VMOVUPS(Mem{Base: xrows[b], Index: co, Scale: 1, Disp: 64}, hi(b))
			}
		}
		iteration(u)
	}
	ADDQ(U8(8), op)
	step()
	JMP(LabelRef(name + "_whole"))

	// The last chunk, loaded masked (nothing past the row) once per slice.
	Label(name + "_lastrun")
	MOVL(Mem{Base: runs, Disp: 4}, n.As32())
	ADDQ(U8(8), runs)
	TESTQ(n, n)
	JZ(LabelRef(name + "_store"))
	MOVQ(field(offLast), co)
	for b := 0; b < nb; b++ {
		VMOVUPS_Z(Mem{Base: xrows[b], Index: co, Scale: 1}, K2, lo(b))
		VMOVUPS_Z(Mem{Base: xrows[b], Index: co, Scale: 1, Disp: 64}, K3, hi(b))
	}
	Label(name + "_last")
	for u := 0; u < 4; u++ {
		iteration(u)
	}
	step()
	JNZ(LabelRef(name + "_last"))

	Label(name + "_store")
	yp, bias := GP64(), GP64()
	MOVQ(field(offY), yp)
	ADDQ(yoff, yp)
	MOVQ(field(offBias), bias)
	ldy := GP64()
	MOVQ(field(offLdy), ldy)
	SHLQ(U8(2), ldy)
	var sc Register
	if int8v {
		sc = GP64()
		MOVQ(field(offScale), sc)
	}
	for b := 0; b < nb; b++ {
		VADDPS(acc(b, 1), acc(b, 0), acc(b, 0))
		VADDPS(acc(b, 3), acc(b, 2), acc(b, 2))
		VADDPS(acc(b, 2), acc(b, 0), acc(b, 0))
		if int8v {
			VMULPS(Mem{Base: sc, Index: yoff, Scale: 1}, acc(b, 0), acc(b, 0))
		}
	}
	TESTQ(bias, bias)
	JZ(LabelRef(name + "_nobias"))
	ADDQ(yoff, bias)
	VMOVUPS_Z(Mem{Base: bias}, K4, tmp)
	for b := 0; b < nb; b++ {
		VADDPS(tmp, acc(b, 0), acc(b, 0))
	}
	Label(name + "_nobias")
	for b := 0; b < nb; b++ {
		VMOVUPS(acc(b, 0), K4, Mem{Base: yp})
		if b < nb-1 {
			ADDQ(ldy, yp)
		}
	}
	ADDQ(U8(64), yoff)
	DECQ(slices)
	JMP(LabelRef(name + "_slice"))

	Label(name + "_done")
	VZEROUPPER()
	RET()
}

var zmm = []VecPhysical{
	Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
	Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31,
}
