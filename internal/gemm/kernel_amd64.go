//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

// Blocking (48 KiB L1d, 1 MiB L2 per core on this EPYC): a kc-deep packed
// B sliver is kc·nr·4 bytes, 16 KiB for 6×16 at kc = 256 and 32 KiB for
// 12×32, so it stays in L1 while the mc×kc block of A (120×256 floats,
// 120 KiB) streams past it from L2. nc only bounds the packed B panel
// (3072·256·4 bytes = 3 MiB, for L3). For the shapes of doc.go every
// operand fits in L2 anyway; kc from 128 to 512 and mc from 48 to 240
// measured within noise of each other.
const asmMC, asmNC = 120, 3072

var avx2Impl = impl{
	name:       "avx2",
	kc:         asmKC,
	wide:       withTaps2(avx2Kernel("avx2-6x16", 6, 16, gemmAVX2x6x16), tapsAVX2x6x16),
	narrow:     withTaps2(avx2Kernel("avx2-12x8", 12, 8, gemmAVX2x12x8), tapsAVX2x12x8),
	gemvT:      gemvTAVX2,
	gemvN:      gemvNAVX2,
	transpose8: transpose8AVX2,
	copyRuns:   copyRunsAsm,
}

var avx512Impl = impl{
	name:   "avx512",
	kc:     asmKC,
	wide:   withTaps(avx512Kernel("avx512-12x32", 12, 32, gemmAVX512x12x32), tapsAVX512x12x32),
	narrow: withTaps(avx512Kernel("avx512-24x16", 24, 16, gemmAVX512x24x16), tapsAVX512x24x16),
	short: []*tileKernel{
		avx512Kernel("avx512-16x16", 16, 16, gemmAVX512x16x16),
		avx512Kernel("avx512-8x32", 8, 32, gemmAVX512x8x32),
	},
	gemvT:      gemvTAVX2,
	gemvN:      gemvNAVX2,
	transpose8: transpose8AVX2,
	copyRuns:   copyRunsAsm,
}

// asmKC is the k block of both asm families. They share it so that AVX2
// and AVX-512 machines compute bit-identical results.
const asmKC = 256

func avx2Kernel(name string, mr, nr int, f func(k int, a *float32, rsa int, b, c *float32, ldc int, alpha, beta float32)) *tileKernel {
	return &tileKernel{
		name: name, mr: mr, nr: nr,
		fn: func(k int, a *float32, rsa int, b, c *float32, ldc int, alpha, beta float32, _ int, _ uint64) {
			f(k, a, rsa, b, c, ldc, alpha, beta)
		},
		fullMask: 1<<nr - 1,
		mc:       roundUp(asmMC, mr), nc: roundUp(asmNC, nr),
	}
}

func avx512Kernel(name string, mr, nr int, f kernelFunc) *tileKernel {
	return &tileKernel{
		name: name, mr: mr, nr: nr, fn: f, masked: true, fullMask: 1<<nr - 1,
		mc: roundUp(asmMC, mr), nc: roundUp(asmNC, nr),
	}
}

func withTaps(k *tileKernel, f tapsFunc) *tileKernel {
	k.taps = f
	return k
}

// withTaps2 adds an AVX2 taps kernel, which always stores the whole tile.
func withTaps2(k *tileKernel, f func(taps int, offs *int, k int, a *float32, rsa int, b, c *float32, ldc int, alpha, beta float32)) *tileKernel {
	k.taps = func(taps int, offs *int, kk int, a *float32, rsa int, b, c *float32, ldc int, alpha, beta float32, _ int, _ uint64) {
		f(taps, offs, kk, a, rsa, b, c, ldc, alpha, beta)
	}
	return k
}

// asmImpls lists the asm implementations this CPU can run, fastest first.
func asmImpls() []*impl {
	var l []*impl
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		return nil
	}
	if cpu.X86.HasAVX512F {
		l = append(l, &avx512Impl)
	}
	return append(l, &avx2Impl)
}

// gemvTAVX2 is impl.gemvT with the AVX2 kernels: blocks of 64 columns,
// then 32, 16 and 8, and the last n mod 8 in Go.
func gemvTAVX2(k, n int, alpha float32, x, b []float32, ldb int, beta float32, y []float32) {
	_, _, _ = x[k-1], y[n-1], b[(k-1)*ldb+n-1] // the kernels read within these
	j := 0
	for ; j+64 <= n; j += 64 {
		gemvTAVX2x64(k, &x[0], &b[j], ldb, &y[j], alpha, beta)
	}
	if j+32 <= n {
		gemvTAVX2x32(k, &x[0], &b[j], ldb, &y[j], alpha, beta)
		j += 32
	}
	if j+16 <= n {
		gemvTAVX2x16(k, &x[0], &b[j], ldb, &y[j], alpha, beta)
		j += 16
	}
	if j+8 <= n {
		gemvTAVX2x8(k, &x[0], &b[j], ldb, &y[j], alpha, beta)
		j += 8
	}
	if j < n {
		gemvTGo(k, n-j, alpha, x, b[j:], ldb, beta, y[j:n]) // the last few columns
	}
}

// gemvNAVX2 is impl.gemvN with the AVX2 kernels, four rows at a time.
func gemvNAVX2(m, k int, alpha float32, a []float32, lda int, x []float32, beta float32, y []float32) {
	_, _, _ = x[k-1], y[m-1], a[(m-1)*lda+k-1]
	i := 0
	for ; i+4 <= m; i += 4 {
		gemvNAVX2x4(k, &a[i*lda], lda, &x[0], &y[i], alpha, beta)
	}
	for ; i < m; i++ {
		gemvNAVX2x1(k, &a[i*lda], lda, &x[0], &y[i], alpha, beta)
	}
}

// copyRunsAsm is impl.copyRuns with copyRunsAVX2 for widths that are a
// multiple of 8 (all the asm kernels' nr).
func copyRunsAsm(dst, src []float32, kc, w, ldb int) {
	if kc == 0 {
		return
	}
	if w%8 != 0 {
		copyRunsGo(dst, src, kc, w, ldb)
		return
	}
	_, _ = dst[kc*w-1], src[(kc-1)*ldb+w-1]
	copyRunsAVX2(kc, &src[0], ldb, &dst[0], w)
}
