package gemm

// backend, when set (package internal/openblas under the openblas build tag),
// computes every matrix-matrix product instead of this package's kernels
// (matrix-vector shapes stay with this package's GEMV, which is faster than
// OpenBLAS's sgemm there); backendThreads follows SetThreads.
var (
	backend        func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	backendThreads func(n int)
)

// UseBackend hands matrix-matrix products to another sgemm (OpenBLAS);
// threads sets its thread count. It must be called before any product, from
// an init function.
func UseBackend(sgemm func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int), threads func(int)) {
	backend, backendThreads = sgemm, threads
	threads(Threads())
}

// Backend names what computes the products: "openblas" or Impl().
func Backend() string {
	if backend != nil {
		return "openblas"
	}
	return Impl()
}
