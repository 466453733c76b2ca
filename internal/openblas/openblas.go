//go:build openblas && cgo

package openblas

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import (
	"unsafe"

	"github.com/shrink-ml/shrink/internal/gemm"
)

// Enabled reports that products go to OpenBLAS.
const Enabled = true

func init() {
	gemm.UseBackend(sgemm, func(n int) { C.openblas_set_num_threads(C.int(n)) })
}

// sgemm is cblas_sgemm. Package gemm keeps matrix-vector shapes (a batch of
// one) to its own GEMV: OpenBLAS's sgemm took 70 µs for LeNet-300-100's
// forward pass there, shrink's GEMV 10 µs.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := uint32(C.CblasNoTrans), uint32(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, C.enum_CBLAS_TRANSPOSE(ta), C.enum_CBLAS_TRANSPOSE(tb),
		C.blasint(m), C.blasint(n), C.blasint(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda), (*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}
