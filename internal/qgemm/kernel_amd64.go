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
}

// avx2Impl uses VPMADDUBSW for 7-bit activations and VPMADDWD on values
// widened to int16 for 8-bit ones.
var avx2Impl = impl{
	name:     "avx2",
	pick:     pickAVX2,
	minMax:   minMaxAsm,
	quantize: quantizeAsm,
	dequant:  dequantAsm,
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
// one; the rest the general tile.
//
// BenchmarkTiles (batch 256): the general tiles are within noise of each
// other where n fills them (fc1 300, the LSTM's 512: 390-415 GOP/s);
// 24×16 is twice as fast as 12×32 for n ≤ 16 (a convolution's channels,
// the 10 classes) and slightly ahead for n = 100, where a 32-wide tile
// computes 28% padding and a 16-wide one 12%.
func pickVNNI(m, n int, _ Range) *tile {
	switch {
	case m == 1:
		return vnni1x64
	case m <= 4:
		return vnni4x64
	case n <= 16 || (n < 128 && n%32 != 0 && n%32 <= 16):
		return vnni24x16
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

// minMaxAsm is impl.minMax: the assembly on whole 32-float blocks, Go on
// the rest (min and max are exact, so the split does not matter).
func minMaxAsm(x []float32) (lo, hi float32) {
	n := len(x) &^ 31
	if n > 0 {
		lo, hi = minMaxAVX2(n, &x[0])
	}
	l, h := minMaxGo(x[n:])
	return min(lo, l), max(hi, h)
}

func quantizeAsm(x []float32, q []uint8, inv float32, zp, qmax int32) {
	n := len(x) &^ 31
	if n > 0 {
		_ = q[n-1]
		quantizeAVX2(n, &x[0], &q[0], inv, zp, qmax)
	}
	quantizeGo(x[n:], q[n:], inv, zp, qmax)
}

func dequantAsm(acc, zc []int32, mult, bias, y []float32, add bool) {
	n := len(y) &^ 7
	if n > 0 {
		_, _, _, _ = acc[n-1], zc[n-1], mult[n-1], bias[n-1]
		a := 0
		if add {
			a = 1
		}
		dequantAVX2(n, &acc[0], &zc[0], &mult[0], &bias[0], &y[0], a)
	}
	dequantGo(acc[n:], zc[n:], mult[n:], bias[n:], y[n:], add)
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
