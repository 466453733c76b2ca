package gemm

//go:generate go run asm/gen.go -out kernel_amd64.s -stubs kernel_stubs_amd64.go -pkg gemm

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32
// matrices, with op(X) = Xᵀ when the matching trans flag is set. op(A) is
// m×k, op(B) is k×n and C is m×n; lda, ldb and ldc are the row strides of
// the stored A, B and C. The semantics are those of row-major BLAS sgemm
// (gonum's blas32.Gemm): beta == 0 overwrites C without reading it (NaN
// in C does not survive), alpha == 0 or k == 0 only scale C by beta.
//
// Invalid arguments panic with the same messages as gonum's Sgemm.
//
// For a given shape, the result is bit-identical on every call whatever
// SetThreads says; see the package documentation for the summation order.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	p, tiled := newProblem(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	if !tiled {
		return
	}
	if backend != nil {
		backend(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	p.solve()
}

// SgemmSerial computes what Sgemm computes, on the calling goroutine alone
// and always with this package's kernels (never the OpenBLAS backend, whose
// own threads would compete): for callers that already run several products
// at once, one per thread. Its results are Sgemm's without a backend, bit
// for bit.
func SgemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	p, tiled := newProblem(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	if !tiled {
		return
	}
	im := active.Load()
	kern := im.pick(p.n)
	kc := kBlock(p.k, im.kc)
	ws := getWorkspace(kern, kc, p.m, p.n)
	p.block(ws, im, kern, kc, 0, p.m, 0, p.n)
	putWorkspace(ws)
}

// newProblem checks Sgemm's arguments and computes at once the products
// that need no tiles (empty C, alpha or k zero, a matrix-vector shape);
// tiled reports whether p is left for the tiled kernels or the backend.
// Sgemm and SgemmSerial share it so that they agree on every such case.
func newProblem(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) (p problem, tiled bool) {
	checkSgemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return p, false
	}
	if alpha == 0 || k == 0 {
		scaleC(m, n, beta, c, ldc)
		return p, false
	}
	p = problem{
		transA: transA, transB: transB,
		m: m, n: n, k: k,
		alpha: alpha, beta: beta,
		a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
	}
	return p, !p.gemv()
}

// Panic messages, shared with gonum so that callers see the same errors
// through BLAS whichever implementation is installed.
const (
	errMLT0   = "blas: m < 0"
	errNLT0   = "blas: n < 0"
	errKLT0   = "blas: k < 0"
	errBadLdA = "blas: bad leading dimension of A"
	errBadLdB = "blas: bad leading dimension of B"
	errBadLdC = "blas: bad leading dimension of C"
	errShortA = "blas: insufficient length of a"
	errShortB = "blas: insufficient length of b"
	errShortC = "blas: insufficient length of c"

	errBadTranspose = "blas: illegal transpose"
	errZeroIncX     = "blas: zero x index increment"
	errZeroIncY     = "blas: zero y index increment"
	errShortX       = "blas: insufficient length of x"
	errShortY       = "blas: insufficient length of y"
)

func checkSgemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	checkDims(transA, transB, m, n, k, lda, ldb, ldc)
	if m == 0 || n == 0 {
		return
	}
	// With k == 0 these bounds are trivially met (gonum checks the same way).
	if transA {
		if len(a) < (k-1)*lda+m {
			panic(errShortA)
		}
	} else if len(a) < (m-1)*lda+k {
		panic(errShortA)
	}
	if transB {
		if len(b) < (n-1)*ldb+k {
			panic(errShortB)
		}
	} else if len(b) < (k-1)*ldb+n {
		panic(errShortB)
	}
	if len(c) < (m-1)*ldc+n {
		panic(errShortC)
	}
}

// checkDims panics, as gonum does, on negative sizes and leading
// dimensions too small for the stored A, B and C: the checks Sgemm and Taps
// share.
func checkDims(transA, transB bool, m, n, k, lda, ldb, ldc int) {
	if m < 0 {
		panic(errMLT0)
	}
	if n < 0 {
		panic(errNLT0)
	}
	if k < 0 {
		panic(errKLT0)
	}
	if transA {
		if lda < max(1, m) {
			panic(errBadLdA)
		}
	} else if lda < max(1, k) {
		panic(errBadLdA)
	}
	if transB {
		if ldb < max(1, k) {
			panic(errBadLdB)
		}
	} else if ldb < max(1, n) {
		panic(errBadLdB)
	}
	if ldc < max(1, n) {
		panic(errBadLdC)
	}
}

// scaleC sets C = beta*C, writing zeros (not beta*C) when beta == 0 so that
// NaN and Inf in C are overwritten as BLAS requires.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	switch beta {
	case 1:
		return
	case 0:
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
	default:
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
	}
}
