//go:build amd64 && !purego

package qgemm

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// vnniImpl uses AVX-512 VNNI's VPDPBUSD for the products; the element-wise
// kernels are AVX2 (memory-bound: wider vectors gain nothing measurable).
var vnniImpl = impl{
	name:     "vnni",
	pick:     pickVNNI,
	minMax:   minMaxAsm,
	quantize: quantizeAsm,
	dequant:  dequantAsm,

	taps:          tapsVNNIPick,
	fastTaps:      true,
	quantizeGroup: quantizeGroupAsm,
	planeOut:      planeOutAsm,
}

// avx2Impl uses VPMADDUBSW for 7-bit activations and VPMADDWD on values
// widened to int16 for 8-bit ones.
var avx2Impl = impl{
	name:     "avx2",
	pick:     pickAVX2,
	minMax:   minMaxAsm,
	quantize: quantizeAsm,
	dequant:  dequantAsm,

	// No AVX2 taps kernel: the convolutions keep MatMul's tiles.
	taps:          tapsGoPick,
	quantizeGroup: quantizeGroupAsm,
	planeOut:      planeOutGo,
}

// asmImpls lists the implementations this CPU runs, fastest first.
func asmImpls() []*impl {
	if !cpu.X86.HasAVX2 {
		return nil
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI {
		return []*impl{&vnniImpl, &avx2Impl}
	}
	return []*impl{&avx2Impl}
}

func vnniTile(name string, mr, nr int, f func(kg int, a *uint8, lda int, b *int8, bs int, c *int32, ldc int, accum int, rows int, mask uint64)) *tile {
	return &tile{name: name, mr: mr, nr: nr, masked: true,
		fn: func(kg int, a unsafe.Pointer, lda int, b *int8, bs int, c *int32, ldc int, accum int, rows int, mask uint64) {
			f(kg, (*uint8)(a), lda, b, bs, c, ldc, accum, rows, mask)
		}}
}

func avx2U7Tile(name string, mr int, f func(kg int, a *uint8, lda int, b *int8, c *int32, ldc int, accum int)) *tile {
	return &tile{name: name, mr: mr, nr: 16,
		fn: func(kg int, a unsafe.Pointer, lda int, b *int8, _ int, c *int32, ldc int, accum int, _ int, _ uint64) {
			f(kg, (*uint8)(a), lda, b, c, ldc, accum)
		}}
}

func avx2U8Tile(name string, mr, nr int, f func(kg int, a *int16, rsa int, b *int8, c *int32, ldc int, accum int)) *tile {
	return &tile{name: name, mr: mr, nr: nr, wideA: true,
		fn: func(kg int, a unsafe.Pointer, lda int, b *int8, _ int, c *int32, ldc int, accum int, _ int, _ uint64) {
			f(kg, (*int16)(a), lda, b, c, ldc, accum)
		}}
}

var (
	vnni12x32 = vnniTile("vnni-12x32", 12, 32, qgemmVNNI12x32)
	vnni8x48  = vnniTile("vnni-8x48", 8, 48, qgemmVNNI8x48)
	vnni6x64  = vnniTile("vnni-6x64", 6, 64, qgemmVNNI6x64)
	vnni24x16 = vnniTile("vnni-24x16", 24, 16, qgemmVNNI24x16)
	vnni4x64  = vnniTile("vnni-4x64", 4, 64, qgemmVNNI4x64)
	vnni1x64  = vnniTile("vnni-1x64", 1, 64, qgemmVNNI1x64)

	u7x4x16 = avx2U7Tile("avx2u7-4x16", 4, qgemmAVX2U7x4x16)
	u7x5x16 = avx2U7Tile("avx2u7-5x16", 5, qgemmAVX2U7x5x16)
	u7x6x16 = avx2U7Tile("avx2u7-6x16", 6, qgemmAVX2U7x6x16)
	u7x1x16 = avx2U7Tile("avx2u7-1x16", 1, qgemmAVX2U7x1x16)

	u8x6x8  = avx2U8Tile("avx2u8-6x8", 6, 8, qgemmAVX2U8x6x8)
	u8x4x8  = avx2U8Tile("avx2u8-4x8", 4, 8, qgemmAVX2U8x4x8)
	u8x2x16 = avx2U8Tile("avx2u8-2x16", 2, 16, qgemmAVX2U8x2x16)
	u8x1x16 = avx2U8Tile("avx2u8-1x16", 1, 16, qgemmAVX2U8x1x16)
)

// pickVNNI: one row streams B once through the 1×64 kernel; few columns
// (a convolution's channels) take the tall 24×16 tile, few rows the 4×64
// one; wide products the 6×64 tile where its columns pad no more than a
// 32-wide tile's would, the rest the 12×32 tile.
//
// BenchmarkTiles (batch 256): the general tiles are within 5% of each
// other where n fills them; 6×64 (4 loads of B and 6 broadcasts of A per
// 24 VPDPBUSD, against 2 and 12 for 12×32) was ahead in every run of
// 2026-12-07: fc1 256×300×784 427 against 405 GOP/s, the LSTM's 512
// gates 430-433 against 414-419 and 359 against 344. 24×16 is twice as
// fast as 12×32 for n ≤ 16 (a convolution's channels, the 10 classes)
// and ahead for n = 100 (368 against 339), where a 32-wide tile computes
// 28% padding and a 16-wide one 12%.
func pickVNNI(m, n int, _ Range) *tile {
	switch {
	case m == 1:
		return vnni1x64
	case m <= 4:
		return vnni4x64
	case n <= 16 || (n < 128 && n%32 != 0 && n%32 <= 16):
		return vnni24x16
	case m >= 6 && (n%64 == 0 || n%64 > 32):
		return vnni6x64
	}
	return vnni12x32
}

// pickAVX2: the 7-bit tiles measured within noise of each other, and
// 6×8 slightly ahead of the other 8-bit ones (BenchmarkTiles).
func pickAVX2(m, n int, r Range) *tile {
	if r == Reduced {
		if m == 1 {
			return u7x1x16
		}
		return u7x4x16
	}
	if m == 1 {
		return u8x1x16
	}
	return u8x6x8
}

// tailMasks[8-r:16-r] are the lane masks of the assembly's last r
// elements of a row.
var tailMasks = [16]int32{-1, -1, -1, -1, -1, -1, -1, -1}

func tailMask(n int) *int32 { return &tailMasks[8-n%8] }

// The element-wise kernels' wrappers check the extent the assembly covers.

func minMaxAsm(m, k int, x []float32, ldx int) (lo, hi float32) {
	if m == 0 || k == 0 {
		return 0, 0
	}
	_ = x[(m-1)*ldx+k-1]
	return minMaxAVX2(m, k, &x[0], ldx, tailMask(k))
}

func quantizeAsm(m, k int, x []float32, ldx int, q []uint8, ldq int, inv float32, zp, qmax int32) {
	if m == 0 || k == 0 {
		return
	}
	_, _ = x[(m-1)*ldx+k-1], q[(m-1)*ldq+k-1]
	quantizeAVX2(m, k, &x[0], ldx, &q[0], ldq, inv, zp, qmax, tailMask(k))
}

func dequantAsm(m, n int, acc []int32, ldacc int, zc []int32, mult, bias, y []float32, ldy int, add, relu bool) {
	if m == 0 || n == 0 {
		return
	}
	_, _, _, _, _ = acc[(m-1)*ldacc+n-1], zc[n-1], mult[n-1], bias[n-1], y[(m-1)*ldy+n-1]
	flags := 0
	if add {
		flags |= 1
	}
	if relu {
		flags |= 2
	}
	dequantAVX2(m, n, &acc[0], ldacc, &zc[0], &mult[0], &bias[0], &y[0], ldy, flags, tailMask(n))
}

// widen sets dst[i] = int16(src[i]).
func widen(dst []int16, src []uint8) {
	n := len(src) &^ 15
	if n > 0 {
		_ = dst[n-1]
		widenAVX2(n, &src[0], &dst[0])
	}
	for i := n; i < len(src); i++ {
		dst[i] = int16(src[i])
	}
}

var vnniTaps = [tapsMaxR + 1]tapsFunc{nil,
	tapsVNNI1, tapsVNNI2, tapsVNNI3, tapsVNNI4, tapsVNNI5, tapsVNNI6, tapsVNNI7, tapsVNNI8,
	tapsVNNI9, tapsVNNI10, tapsVNNI11, tapsVNNI12, tapsVNNI13, tapsVNNI14, tapsVNNI15}

func tapsVNNIPick(r int) tapsFunc { return vnniTaps[r] }

func quantizeGroupAsm(n int, x [4][]float32, q []uint8, inv float32, zp, qmax int32) {
	_, _, _, _, _ = x[0][n-1], x[1][n-1], x[2][n-1], x[3][n-1], q[4*n-1]
	quantizeGroupAVX2(n, &x[0][0], &x[1][0], &x[2][0], &x[3][0], &q[0], inv, zp, qmax, tailMask(n))
}

// planeOutAsm: Epilogue.Output checked the extents.
func planeOutAsm(e *Epilogue, m, n int, acc []int32, ldacc, ldc int, o *PlaneOutput) {
	var scale, shift, res, y *float32
	var q *uint8
	var inv float32
	flags := 0
	if o.Scale != nil {
		scale, shift, flags = &o.Scale[0], &o.Shift[0], flags|1
	}
	if o.Res != nil {
		res, flags = &o.Res[0], flags|2
	}
	if o.ReLU {
		flags |= 4
	}
	if o.Y != nil {
		y, flags = &o.Y[0], flags|8
	}
	if o.Codes != nil {
		q, inv, flags = &o.Codes[0], 1/o.CodeParams.Scale, flags|16
	}
	planeOutAVX512(e.n, m, n, &acc[0], ldacc, ldc, &e.zc[0], &e.mult[0], &e.bias[0], scale, shift, res, y, o.LdY, o.PlaneY,
		q, o.LdCodes, o.GroupCodes, inv, o.CodeParams.ZeroPoint, int32(o.CodeRange), flags)
}
