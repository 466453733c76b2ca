package gemm

// backend, when set (package internal/openblas under the openblas build tag),
// computes every product instead of this package's kernels; backendThreads
// follows SetThreads.
var (
	backend        func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) bool
	backendThreads func(n int)
)

// UseBackend hands products to another sgemm (OpenBLAS), which returns false for
// the shapes it leaves to this package; threads sets its thread count. It must be called before any product, from an init function.
func UseBackend(sgemm func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) bool, threads func(int)) {
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
