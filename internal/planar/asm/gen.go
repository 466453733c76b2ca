//go:build ignore

// Command gen writes the AVX-512 kernels of package planar with avo.
//
// Run it through `go generate ./internal/planar` (see the directive in
// planar.go); it writes kernel_amd64.s and kernel_stubs_amd64.go.
//
// planarR<r>V<v> computes tiles of r output channels × v vectors of 16
// positions (kernelArgs in kernel_amd64.go, the call contract in
// kernel.go): r·v accumulators, v input registers, v opmasks (K1..Kv).
// Per group of steps (a tap's input channels, or one channel's tap) the v
// masks are loaded once; per step the v input vectors are loaded under
// their masks (zeroing the lanes that read the padding) and each
// accumulator gets one VFMADD231PS with the filter value broadcast from
// memory ({1to16}). The tile is stored (or added to what y holds) under
// the output's masks, so a tile may pass the end of an image's positions
// and y be the network's tensor. So every output is one FMA chain over the
// steps in order, which kernel.go's runGo repeats with an exact float32 FMA.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Offsets of kernelArgs' fields (kernel_amd64.go), all 8 bytes wide.
const (
	offTiles = 8 * iota
	offTaps
	offOffs
	offMasks
	offMoffs
	offK
	offX
	offLdx
	offW
	offY
	offLdy
	offAcc
	offSmasks
)

// tiles lists the kernels: for each vector count, every r up to the most
// accumulators that leave registers for the inputs. 4 vectors of 64
// positions are the main tiles (2, 3 and 4 measured alike, BenchmarkTiles
// of an earlier version); single vectors compute what remains of an
// image's positions.
var tiles = []struct{ v, rmax int }{{4, 7}, {1, 7}}

func main() {
	ConstraintExpr("!purego")
	for _, t := range tiles {
		for r := 1; r <= t.rmax; r++ {
			kernel(r, t.v)
		}
	}
	Generate()
}

func kernel(r, v int) {
	if r*v+v > 32 || v > 7 {
		panic(fmt.Sprintf("planar: %d×%d needs more registers than there are", r, v))
	}
	name := fmt.Sprintf("planarR%dV%d", r, v)
	TEXT(name, NOSPLIT, "func(p *byte)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes tiles of %d output channels × %d vectors of positions; see kernelArgs.", name, r, v))
	acc := func(i, j int) VecPhysical { return zmm[i*v+j] }
	in := func(j int) VecPhysical { return zmm[r*v+j] }
	kmask := []Op{K1, K2, K3, K4, K5, K6, K7}

	p := Load(Param("p"), GP64())
	tiles := GP64()
	MOVQ(Mem{Base: p, Disp: offTiles}, tiles)
	x, y, mb := GP64(), GP64(), GP64()
	MOVQ(Mem{Base: p, Disp: offX}, x)
	MOVQ(Mem{Base: p, Disp: offY}, y)
	MOVQ(Mem{Base: p, Disp: offMasks}, mb)
	ldx := GP64()
	MOVQ(Mem{Base: p, Disp: offLdx}, ldx)
	// The stores' masks advance in a register: kernelArgs is a Go heap
	// object, and a pointer stored back into it past the end of its array
	// would be a pointer to another object for the garbage collector,
	// which may scan it from the other core while the kernel runs.
	sm := GP64()
	MOVQ(Mem{Base: p, Disp: offSmasks}, sm)

	Label(name + "_tile")
	for i := 0; i < r; i++ {
		for j := 0; j < v; j++ {
			VPXORD(acc(i, j), acc(i, j), acc(i, j))
		}
	}
	tp, op, mo, wp := GP64(), GP64(), GP64(), GP64()
	MOVQ(Mem{Base: p, Disp: offTaps}, tp)
	MOVQ(Mem{Base: p, Disp: offOffs}, op)
	MOVQ(Mem{Base: p, Disp: offMoffs}, mo)
	MOVQ(Mem{Base: p, Disp: offW}, wp)

	Label(name + "_tap")
	// This group's masks: mb + moffs[g] uint16s.
	mp := GP64()
	MOVQ(Mem{Base: mo}, mp)
	LEAQ(Mem{Base: mb, Index: mp, Scale: 2}, mp)
	for j := 0; j < v; j++ {
		KMOVW(Mem{Base: mp, Disp: 2 * j}, kmask[j])
	}
	xp, kk := GP64(), GP64()
	MOVQ(Mem{Base: op}, xp)
	LEAQ(Mem{Base: x, Index: xp, Scale: 4}, xp)
	MOVQ(Mem{Base: p, Disp: offK}, kk)

	Label(name + "_ic")
	for j := 0; j < v; j++ {
		VMOVUPS_Z(Mem{Base: xp, Disp: 64 * j}, kmask[j], in(j))
	}
	for i := 0; i < r; i++ {
		for j := 0; j < v; j++ {
			VFMADD231PS_BCST(Mem{Base: wp, Disp: 4 * i}, in(j), acc(i, j))
		}
	}
	ADDQ(ldx, xp)
	ADDQ(U32(4*r), wp)
	DECQ(kk)
	JNZ(LabelRef(name + "_ic"))

	ADDQ(U8(8), op)
	ADDQ(U8(8), mo)
	DECQ(tp)
	JNZ(LabelRef(name + "_tap"))

	// The stores' masks: the positions of the output (the loads' masks
	// are done with).
	for j := 0; j < v; j++ {
		KMOVW(Mem{Base: sm, Disp: 2 * j}, kmask[j])
	}
	// Later tap blocks add their sums to the first's, as gemm's kernels do
	// with beta 1: acc = 1·y + acc by VFMADD231PS, the same bits as an add
	// but for which NaN it returns when both are NaN (an add returns acc's,
	// this y's), so NaN payloads match gemm's too. The input registers are
	// free here: one holds the 1s.
	yp := GP64()
	CMPQ(Mem{Base: p, Disp: offAcc}, U8(0))
	JE(LabelRef(name + "_store"))
	one := GP32()
	MOVL(U32(0x3f800000), one)
	VPBROADCASTD(one, in(0))
	MOVQ(y, yp)
	for i := 0; i < r; i++ {
		for j := 0; j < v; j++ {
			VFMADD231PS_Z(Mem{Base: yp, Disp: 64 * j}, in(0), kmask[j], acc(i, j))
		}
		if i < r-1 {
			ADDQ(Mem{Base: p, Disp: offLdy}, yp)
		}
	}
	Label(name + "_store")
	MOVQ(y, yp)
	for i := 0; i < r; i++ {
		for j := 0; j < v; j++ {
			VMOVUPS(acc(i, j), kmask[j], Mem{Base: yp, Disp: 64 * j})
		}
		if i < r-1 {
			ADDQ(Mem{Base: p, Disp: offLdy}, yp)
		}
	}
	ADDQ(U32(64*v), x)
	ADDQ(U32(64*v), y)
	ADDQ(U8(2*v), mb)
	ADDQ(U8(2*v), sm)
	DECQ(tiles)
	JNZ(LabelRef(name + "_tile"))
	VZEROUPPER()
	RET()
}

var zmm = []VecPhysical{
	Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
	Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31,
}
