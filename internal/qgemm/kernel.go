package qgemm

import (
	"sync/atomic"
	"unsafe"

	"github.com/shrink-ml/shrink/internal/gemm"
)

// tileFunc computes one mr×nr tile of C = A·Bᵀ over kg groups of 4 k
// steps: a is the tile's first row of A at the block's first k (rows lda
// bytes apart: uint8 codes, or int16 for tiles with wideA), b the first
// column's group in its sliver (slivers bs bytes apart), c the tile's
// first element (rows ldc int32s apart). accum ≠ 0 adds C's values to the
// sums. Tiles with masked set store only the first rows rows and the
// columns whose bit is set in mask; the others store the whole tile.
type tileFunc func(kg int, a unsafe.Pointer, lda int, b *int8, bs int, c *int32, ldc int, accum int, rows int, mask uint64)

// tile is a micro-kernel and what the driver must know about it.
type tile struct {
	name   string
	mr, nr int
	masked bool // fn honours rows and mask, so ragged tiles are stored in place
	wideA  bool // fn reads A as int16 (the driver widens each block)
	fn     tileFunc
}

// impl is one family of kernels. Every family computes the same exact
// integers, and its element-wise kernels the same floats, operation by
// operation, as the Go ones.
type impl struct {
	name string
	// pick returns the tile for a product of m rows and n columns.
	pick func(m, n int, r Range) *tile
	// minMax returns min(0, x...) and max(0, x...) over m rows of k values
	// ldx apart, skipping NaN.
	minMax func(m, k int, x []float32, ldx int) (lo, hi float32)
	// quantize sets the codes of m rows of k values (see code).
	quantize func(m, k int, x []float32, ldx int, q []uint8, ldq int, inv float32, zp, qmax int32)
	// dequant sets, for m rows of n values, y[i][j] (+)=
	// float32(acc[i][j]-zc[j])*mult[j] + bias[j], then max(y, 0) with relu
	// (see dequantGo).
	dequant func(m, n int, acc []int32, ldacc int, zc []int32, mult, bias, y []float32, ldy int, add, relu bool)
	// taps returns the ConvTaps tile of r output channels (1..15).
	taps func(r int) tapsFunc
	// fastTaps: taps are vector kernels (TapsFast).
	fastTaps bool
	// quantizeGroup sets q[4i+ch] = code(x[ch][i]) for i < n.
	quantizeGroup func(n int, x [4][]float32, q []uint8, inv float32, zp, qmax int32)
	// planeOut is Epilogue.Output after validation (planeOutGo).
	planeOut func(e *Epilogue, m, n int, acc []int32, ldacc, ldc int, o *PlaneOutput)
}

// active is the implementation in use, chosen once at start-up; only tests
// and benchmarks change it.
var active atomic.Pointer[impl]

// envVar overrides the choice: "purego", "avx2" or "vnni" (the latter two
// only if the CPU has them). SHRINK_GEMM=purego, shrink's switch for all
// of its assembly, also selects the Go kernels.
const envVar = "SHRINK_QGEMM"

func init() {
	active.Store(chooseImpl(gemm.Requested(envVar)))
}

// chooseImpl returns the implementation named want if this CPU has it,
// else the fastest one available.
func chooseImpl(want string) *impl {
	if want == "purego" {
		return &goImpl
	}
	avail := asmImpls() // fastest first
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

// Impl reports the kernels in use: "vnni", "avx2" or "purego".
func Impl() string { return active.Load().name }

// useImpl switches the implementation (tests and benchmarks) and returns
// the previous one's name.
func useImpl(name string) (prev string) {
	prev = active.Load().name
	active.Store(chooseImpl(name))
	return prev
}
