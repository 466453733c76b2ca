//go:build ignore

// Command gen writes the AVX-512 kernels of package sparse with avo.
//
// Run it through `go generate ./internal/sparse` (see the directive in
// sparse.go); it writes kernel_amd64.s and kernel_stubs_amd64.go.
//
// The format (see format.go): rows in slices of 16, one per vector lane;
// columns in chunks of 32; for each slice and chunk, cnt iterations, each
// 16 column offsets (bytes, 0..31 within the chunk) and 16 values, lane r
// holding row r's next nonzero in the chunk or a zero. A chunk of x is two
// zmm registers, and VPERMI2PS picks each lane's x value from them by its
// offset: a gather from registers, with no memory access per element.
//
// Summation order, which format.go's Go kernel repeats: lane r of a slice
// keeps four sums a[p][q], p the chunk's parity, q the iteration's parity
// within the chunk, each a chain of rounded adds of rounded products
// (no FMA, so Go can match it bit for bit); the row's result is
// ((a00 + a01) + (a10 + a11)), then times its scale (int8 values), then
// plus its bias.
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
	offChunks
	offCnt
	offIdx
	offVal
	offScale
	offX
	offLdx
	offFull
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

// kernel emits func(p *byte), p a *kernelArgs, which computes y = x·Wᵀ (+ bias) for
// nb rows of x (ldx floats apart) into nb rows of y (ldy floats apart).
// With int8 the values are int8, converted with VPMOVSXBD and VCVTDQ2PS,
// and each row's sum is multiplied by its scale.
func kernel(name string, nb int, int8v bool) {
	TEXT(name, NOSPLIT, "func(p *byte)")
	Pragma("noescape")
	kind := "float32"
	if int8v {
		kind = "int8 (times each row's scale)"
	}
	Doc(fmt.Sprintf("%s computes y = x·Wᵀ + bias for %d row(s) of x, W's values %s; see kernelArgs.", name, nb, kind))

	// Registers: two x tables per batch row, four sums per batch row, the
	// offsets, the values, and temporaries.
	xlo := func(b int) VecPhysical { return zmm[2*b] }
	xhi := func(b int) VecPhysical { return zmm[2*b+1] }
	acc := func(b, p, q int) VecPhysical { return zmm[2*nb+4*b+2*p+q] }
	idx := zmm[6*nb]
	val := zmm[6*nb+1]
	tmp := zmm[6*nb+2]
	if 6*nb+3 > 32 {
		panic(name)
	}

	args := Load(Param("p"), GP64())
	field := func(off int) Mem { return Mem{Base: args, Disp: off} }
	slices, cnt, ip, vp := GP64(), GP64(), GP64(), GP64()
	MOVQ(field(offSlices), slices)
	MOVQ(field(offCnt), cnt)
	MOVQ(field(offIdx), ip)
	MOVQ(field(offVal), vp)
	ldx := GP64()
	MOVQ(field(offLdx), ldx)
	SHLQ(U8(2), ldx)
	ldx3 := GP64()
	LEAQ(Mem{Base: ldx, Index: ldx, Scale: 2}, ldx3)
	yoff := GP64() // byte offset of the slice's outputs within a row of y
	XORQ(yoff, yoff)
	// K2, K3: the lanes of a partial last chunk of x; K4: the lanes of the
	// slice being stored (all but in the last slice).
	t := GP64()
	MOVQ(field(offXMask), t)
	KMOVW(t.As32(), K2)
	SHRQ(U8(16), t)
	KMOVW(t.As32(), K3)
	MOVL(U32(0xffff), t.As32())
	KMOVW(t.As32(), K4)

	xrow := func(base Register, b, disp int) Mem {
		switch b {
		case 0:
			return Mem{Base: base, Disp: disp}
		case 1:
			return Mem{Base: base, Index: ldx, Scale: 1, Disp: disp}
		case 2:
			return Mem{Base: base, Index: ldx, Scale: 2, Disp: disp}
		default:
			return Mem{Base: base, Index: ldx3, Scale: 1, Disp: disp}
		}
	}
	valBytes := 64
	if int8v {
		valBytes = 16
	}
	// iteration adds one iteration's products to the sums a[p][q].
	iteration := func(p, q, voff, ioff int) {
		VPMOVZXBD(Mem{Base: ip, Disp: ioff}, idx)
		if int8v {
			VPMOVSXBD(Mem{Base: vp, Disp: voff}, val)
			VCVTDQ2PS(val, val)
		} else if nb > 1 {
			VMOVUPS(Mem{Base: vp, Disp: voff}, val)
		}
		for b := 0; b < nb; b++ {
			x := idx
			if nb > 1 {
				x = tmp
				VMOVDQA32(idx, x)
			}
			VPERMI2PS(xhi(b), xlo(b), x) // x[lane] = chunk[offset[lane]]
			if int8v || nb > 1 {
				VMULPS(val, x, x)
			} else {
				VMULPS(Mem{Base: vp, Disp: voff}, x, x)
			}
			VADDPS(x, acc(b, p, q), acc(b, p, q))
		}
	}

	Label(name + "_slice")
	TESTQ(slices, slices)
	JZ(LabelRef(name + "_done"))
	CMPQ(slices, U8(1))
	JNE(LabelRef(name + "_zero"))
	KMOVW(field(offYMask), K4)
	Label(name + "_zero")
	for b := 0; b < nb; b++ {
		for pq := 0; pq < 4; pq++ {
			r := acc(b, pq/2, pq%2)
			VPXORD(r, r, r)
		}
	}
	c, xc, n := GP64(), GP64(), GP64()
	XORQ(c, c)
	MOVQ(field(offX), xc)

	Label(name + "_chunk")
	CMPQ(c, field(offChunks))
	JGE(LabelRef(name + "_store"))
	MOVBQZX(Mem{Base: cnt}, n)
	INCQ(cnt)
	TESTQ(n, n)
	JZ(LabelRef(name + "_next"))
	CMPQ(c, field(offFull))
	JGE(LabelRef(name + "_partial"))
	for b := 0; b < nb; b++ {
		VMOVUPS(xrow(xc, b, 0), xlo(b))
		VMOVUPS(xrow(xc, b, 64), xhi(b))
	}
	JMP(LabelRef(name + "_parity"))
	Label(name + "_partial")
	for b := 0; b < nb; b++ {
		VMOVUPS_Z(xrow(xc, b, 0), K2, xlo(b))
		VMOVUPS_Z(xrow(xc, b, 64), K3, xhi(b))
	}
	Label(name + "_parity")
	TESTQ(U32(1), c)
	JNZ(LabelRef(name + "_odd"))
	for p := 0; p < 2; p++ {
		if p == 1 {
			Label(name + "_odd")
		}
		pairs := fmt.Sprintf("%s_p%d_pairs", name, p)
		single := fmt.Sprintf("%s_p%d_single", name, p)
		Label(pairs)
		CMPQ(n, U8(2))
		JL(LabelRef(single))
		iteration(p, 0, 0, 0)
		iteration(p, 1, valBytes, 16)
		ADDQ(U8(32), ip)
		ADDQ(U8(2*valBytes), vp)
		SUBQ(U8(2), n)
		JMP(LabelRef(pairs))
		Label(single)
		TESTQ(n, n)
		JZ(LabelRef(name + "_next"))
		iteration(p, 0, 0, 0)
		ADDQ(U8(16), ip)
		ADDQ(U8(valBytes), vp)
		JMP(LabelRef(name + "_next"))
	}
	Label(name + "_next")
	INCQ(c)
	ADDQ(U32(128), xc)
	JMP(LabelRef(name + "_chunk"))

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
		s := acc(b, 0, 0)
		VADDPS(acc(b, 0, 1), s, s)
		VADDPS(acc(b, 1, 1), acc(b, 1, 0), acc(b, 1, 0))
		VADDPS(acc(b, 1, 0), s, s)
		if int8v {
			VMULPS(Mem{Base: sc, Index: yoff, Scale: 1}, s, s)
		}
	}
	TESTQ(bias, bias)
	JZ(LabelRef(name + "_nobias"))
	ADDQ(yoff, bias)
	VMOVUPS_Z(Mem{Base: bias}, K4, tmp)
	for b := 0; b < nb; b++ {
		VADDPS(tmp, acc(b, 0, 0), acc(b, 0, 0))
	}
	Label(name + "_nobias")
	for b := 0; b < nb; b++ {
		VMOVUPS(acc(b, 0, 0), K4, Mem{Base: yp})
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
