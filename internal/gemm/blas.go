package gemm

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLAS is gonum's pure-Go BLAS with the float32 products that dominate
// training replaced by this package's kernels. It satisfies gorgonia's and
// tensor's BLAS interfaces:
//
//	gorgonia.Use(gemm.BLAS{}) // also calls tensor.Use
//
// Like gonum's, the methods take row-major arguments.
type BLAS struct {
	gonum.Implementation
}

// Compile-time check that BLAS still provides all four families.
var _ interface {
	blas.Float32
	blas.Float64
	blas.Complex64
	blas.Complex128
} = BLAS{}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C; see the package-level
// Sgemm. ConjTrans is Trans for real matrices.
func (BLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	Sgemm(isTrans(tA), isTrans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Sgemv computes y = alpha*op(A)*x + beta*y; see the package-level Sgemv.
func (BLAS) Sgemv(tA blas.Transpose, m, n int, alpha float32, a []float32, lda int, x []float32, incX int, beta float32, y []float32, incY int) {
	Sgemv(isTrans(tA), m, n, alpha, a, lda, x, incX, beta, y, incY)
}

func isTrans(t blas.Transpose) bool {
	switch t {
	case blas.NoTrans:
		return false
	case blas.Trans, blas.ConjTrans:
		return true
	}
	panic(errBadTranspose)
}
