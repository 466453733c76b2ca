package qgemm

import (
	"math"
	"math/bits"
	"unsafe"
)

// goImpl is the portable implementation: without AVX2, off amd64, under
// the purego build tag, or with SHRINK_QGEMM=purego. It shares the driver
// with the assembly, so it also checks the driver's blocking and edges.
var goImpl = impl{
	name:     "purego",
	pick:     func(m, n int, r Range) *tile { return &goTile },
	minMax:   minMaxGo,
	quantize: quantizeGo,
	dequant:  dequantGo,

	taps:          tapsGoPick,
	quantizeGroup: quantizeGroupGo,
	planeOut:      planeOutGo,
}

var goTile = tile{name: "go4x16", mr: 4, nr: 16, masked: true, fn: tileGo}

// tileGo is the tileFunc contract in Go, one row at a time (16 sums on the
// stack, B re-read from L1 for each row).
func tileGo(kg int, a unsafe.Pointer, lda int, b *int8, _ int, c *int32, ldc int, accum int, rows int, mask uint64) {
	bs := unsafe.Slice(b, kg*64)
	// The valid columns are a prefix: C may end after the last of them.
	cs := unsafe.Slice(c, (rows-1)*ldc+bits.Len64(mask&0xffff))
	for i := 0; i < rows; i++ {
		ar := unsafe.Slice((*uint8)(unsafe.Add(a, i*lda)), kg*4)
		var acc [16]int32
		for g := 0; g < kg; g++ {
			a0, a1, a2, a3 := int32(ar[4*g]), int32(ar[4*g+1]), int32(ar[4*g+2]), int32(ar[4*g+3])
			bg := (*[64]int8)(bs[g*64 : g*64+64])
			for j := range acc {
				acc[j] += a0*int32(bg[4*j]) + a1*int32(bg[4*j+1]) + a2*int32(bg[4*j+2]) + a3*int32(bg[4*j+3])
			}
		}
		row := cs[i*ldc:]
		for j, v := range acc {
			if mask>>j&1 == 0 {
				break
			}
			if accum != 0 {
				v += row[j]
			}
			row[j] = v
		}
	}
}

// minMaxGo returns min(0, x...) and max(0, x...) over m rows. NaN never
// compares less or greater, so it is skipped, as the assembly skips it.
func minMaxGo(m, k int, x []float32, ldx int) (lo, hi float32) {
	for i := 0; i < m; i++ {
		for _, v := range x[i*ldx : i*ldx+k] {
			if v < lo {
				lo = v
			}
			if v > hi {
				hi = v
			}
		}
	}
	return lo, hi
}

// quantizeGo sets q[i][j] = code(x[i][j], inv, zp, qmax).
func quantizeGo(m, k int, x []float32, ldx int, q []uint8, ldq int, inv float32, zp, qmax int32) {
	for i := 0; i < m; i++ {
		qr := q[i*ldq : i*ldq+k]
		for j, v := range x[i*ldx : i*ldx+k] {
			qr[j] = uint8(code(v, inv, zp, qmax))
		}
	}
}

// code is quant's rule for one value, clamped to 0..qmax:
// round_half_even(x*inv) + zp, with the product taken in float32 as ATen
// does. The product is first bounded to ±2^24 (NaN to -2^24) so that the
// conversion is defined for any input; rounding commutes with that bound.
func code(x, inv float32, zp, qmax int32) int32 {
	v := x * inv
	if !(v >= -1<<24) {
		v = -1 << 24
	}
	if v > 1<<24 {
		v = 1 << 24
	}
	r := int32(math.RoundToEven(float64(v))) + zp
	return min(max(r, 0), qmax)
}

// dequantGo sets y[i][j] = t or y[i][j] += t with
// t = float32(float32(acc[i][j]-zc[j])*mult[j]) + bias[j]: each operation
// rounded on its own (the conversion stops the compiler from fusing a
// multiply-add, which the assembly does not do either). With relu, y[i][j]
// is then max(y[i][j], 0) as Go computes it: NaN stays, -0 becomes +0.
func dequantGo(m, n int, acc []int32, ldacc int, zc []int32, mult, bias, y []float32, ldy int, add, relu bool) {
	zc, mult, bias = zc[:n], mult[:n], bias[:n]
	for i := 0; i < m; i++ {
		ar, yr := acc[i*ldacc:i*ldacc+n], y[i*ldy:i*ldy+n]
		for j := range yr {
			t := float32(float32(ar[j]-zc[j])*mult[j]) + bias[j]
			if add {
				t += yr[j]
			}
			if relu {
				t = max(t, 0)
			}
			yr[j] = t
		}
	}
}
