//go:build amd64 && !purego

package gemm

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// BenchmarkTiles compares the candidate micro-tiles on the main LeNet
// shapes, each as the only kernel of an otherwise standard implementation.
// It is how the 6×16 (AVX2) and 12×32 (AVX-512) tiles were chosen.
func BenchmarkTiles(b *testing.B) {
	tiles := []*tileKernel{
		avx2Kernel("avx2-6x16", 6, 16, gemmAVX2x6x16),
		avx2Kernel("avx2-4x24", 4, 24, gemmAVX2x4x24),
		avx2Kernel("avx2-12x8", 12, 8, gemmAVX2x12x8),
	}
	if cpu.X86.HasAVX512F {
		tiles = append(tiles,
			avx512Kernel("avx512-12x32", 12, 32, gemmAVX512x12x32),
			avx512Kernel("avx512-14x32", 14, 32, gemmAVX512x14x32),
			avx512Kernel("avx512-8x48", 8, 48, gemmAVX512x8x48),
			avx512Kernel("avx512-24x16", 24, 16, gemmAVX512x24x16),
			avx512Kernel("avx512-16x16", 16, 16, gemmAVX512x16x16),
			avx512Kernel("avx512-8x32", 8, 32, gemmAVX512x8x32))
	}
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		b.Skip("no AVX2/FMA")
	}
	prev := active.Load()
	defer active.Store(prev)
	for _, s := range benchShapes[:9] {
		tc := gemmCase{tA: s.tA, tB: s.tB, m: s.m, n: s.n, k: s.k, alpha: 1, seed: 1}
		a, lda, bb, ldb, c, ldc := tc.operands()
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		for _, tk := range tiles {
			b.Run(s.name+"/"+tk.name, func(b *testing.B) {
				im := avx2Impl
				im.wide, im.narrow = tk, nil
				active.Store(&im)
				for range b.N {
					Sgemm(s.tA, s.tB, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, ldc)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
