package gemm

import (
	"os"
	"sync/atomic"
)

// kernelFunc computes one mr×nr tile of C:
//
//	C[i][j] = alpha * Σ_p a[i*rsa+p]*b[p*nr+j] + beta*C[i][j]
//
// summing p in increasing order, without reading C when beta == 0. A is
// row-strided (rsa elements between rows), b a packed k-major sliver, and
// C's rows are ldc elements apart. Kernels with masked set store only the
// first rows rows and the columns whose bit is set in mask; the others
// always store the whole tile (callers pass mr and fullMask). The asm
// kernels in kernel_amd64.s and the Go one in kernel_go.go follow this.
type kernelFunc func(k int, a *float32, rsa int, b, c *float32, ldc int, alpha, beta float32, rows int, mask uint64)

// tileKernel is a micro-kernel with the cache blocking tuned for it.
type tileKernel struct {
	name     string
	mr, nr   int // tile of C computed per call
	fn       kernelFunc
	masked   bool   // fn honours rows and mask
	fullMask uint64 // 1<<nr - 1
	// Blocking: a kc-deep sliver of packed B (kc×nr) stays in L1 while the
	// mc×kc block of A streams past it from L2; kc×nc of packed B is meant
	// for L3. mc is a multiple of mr, nc of nr. kc belongs to the impl.
	mc, nc int
	// taps, if set, is the same tile summed over several A offsets (see
	// Taps): the kernelFunc contract with A's rows for tap t at
	// a[offs[t]+i*rsa], k steps per tap, one FMA chain per element.
	taps tapsFunc
}

// tapsFunc is a tile kernel over taps (tileKernel.taps).
type tapsFunc func(taps int, offs *int, k int, a *float32, rsa int, b, c *float32, ldc int, alpha, beta float32, rows int, mask uint64)

// impl is a family of kernels that give bit-identical results for the same
// inputs: whichever member computes a tile, each element is the same chain
// of fused multiply-adds (or, for purego, of multiplies and adds).
type impl struct {
	name string
	// kc is the largest k block. Splitting k changes the rounding (alpha
	// and the partial sums meet C once per block), so it is shared by all
	// kernels of the family and by every machine that runs it.
	kc int
	// wide is the general kernel; narrow, if set, replaces it for
	// products with n ≤ narrow.nr where wide would mostly compute padding.
	wide, narrow *tileKernel
	// short lists kernels as wide as wide or narrow with fewer rows, for
	// products of few rows that their mr does not divide (see pickRows).
	short []*tileKernel
	// gemvT computes y[j] = alpha*Σ_p x[p]*b[p*ldb+j] + beta*y[j] for
	// j < n (y = alpha*Bᵀx + beta*y with B k×n row-major).
	gemvT func(k, n int, alpha float32, x []float32, b []float32, ldb int, beta float32, y []float32)
	// gemvN computes y[i] = alpha*dot(a[i*lda:i*lda+k], x) + beta*y[i]
	// for i < m (y = alpha*A·x + beta*y with A m×k row-major).
	gemvN func(m, k int, alpha float32, a []float32, lda int, x []float32, beta float32, y []float32)
	// transpose8, if set, writes dst[q*ldd+r] = src[r*lds+q] for r < 8,
	// q < 8n: the packing of operands stored the other way round.
	transpose8 func(n int, src *float32, lds int, dst *float32, ldd int)
	// copyRuns copies kc runs of w floats, ldb apart in src, to
	// consecutive runs in dst: the packing of a B stored row-major.
	copyRuns func(dst, src []float32, kc, w, ldb int)
}

// pick returns the tile kernel for a product with n columns.
func (im *impl) pick(n int) *tileKernel {
	if im.narrow != nil && n <= im.narrow.nr {
		return im.narrow
	}
	return im.wide
}

// pickRows is pick for a product of m rows: when m is below mc and not a
// multiple of the picked kernel's mr, a short kernel of the same width
// whose mr divides m, so no tile computes rows of padding. The same width
// packs B alike, and every kernel of the family gives the same bits.
func (im *impl) pickRows(n, m int) *tileKernel {
	k := im.pick(n)
	if m%k.mr == 0 || m >= k.mc {
		return k
	}
	for _, s := range im.short {
		if s.nr == k.nr && m%s.mr == 0 {
			return s
		}
	}
	return k
}

// active is the implementation in use. It is chosen once at start-up (see
// chooseImpl) and only tests and benchmarks change it.
var active atomic.Pointer[impl]

// envVar names the environment variable that overrides the automatic
// choice: "purego" forces the portable Go kernels; "avx2" and "avx512"
// force those kernels if the CPU has them (else the automatic choice).
const envVar = "SHRINK_GEMM"

func init() {
	active.Store(chooseImpl(os.Getenv(envVar)))
}

// Requested is the kernel family another kernel package is asked for: its
// own variable (SHRINK_QGEMM, SHRINK_SPARSE, ...), else "purego" when
// SHRINK_GEMM=purego, shrink's switch for all of its assembly, else "" (the
// fastest the CPU has). One place, so the packages cannot drift apart.
func Requested(pkgVar string) string {
	want := os.Getenv(pkgVar)
	if want == "" && os.Getenv(envVar) == "purego" {
		want = "purego"
	}
	return want
}

// chooseImpl returns the implementation named by want if it is available,
// else the fastest available one.
func chooseImpl(want string) *impl {
	avail := asmImpls() // fastest first
	if want == "purego" {
		return &goImpl
	}
	for _, im := range avail {
		if im.name == want {
			return im
		}
	}
	if len(avail) > 0 {
		return avail[0]
	}
	return &goImpl
}

// Impl reports the kernel family in use: "avx512", "avx2" or "purego".
func Impl() string { return active.Load().name }

// useImpl switches the implementation (for tests and benchmarks) and
// returns the previous one's name.
func useImpl(name string) (prev string) {
	prev = active.Load().name
	active.Store(chooseImpl(name))
	return prev
}
