//go:build openblas

package openblas_test

import (
	"math"
	"testing"

	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/openblas"
)

// TestTagRoutesToOpenBLAS fails a -tags openblas build that silently kept the
// pure-Go kernels (cgo off, say), and checks OpenBLAS's products against the
// package's own on a LeNet-300-100 shape, transposed operands included.
func TestTagRoutesToOpenBLAS(t *testing.T) {
	if !openblas.Enabled || gemm.Backend() != "openblas" {
		t.Fatalf("built with -tags openblas but products go to %q (is CGO_ENABLED=1 and libopenblas-dev installed?)", gemm.Backend())
	}
	const m, n, k = 64, 30, 78
	a, b := make([]float32, m*k), make([]float32, k*n)
	for i := range a {
		a[i] = float32(math.Sin(float64(i)))
	}
	for i := range b {
		b[i] = float32(math.Cos(float64(i)))
	}
	for _, tr := range []struct{ a, b bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		lda, ldb := k, n
		if tr.a {
			lda = m
		}
		if tr.b {
			ldb = k
		}
		got := make([]float32, m*n)
		gemm.Sgemm(tr.a, tr.b, m, n, k, 1, a, lda, b, ldb, 0, got, n)
		for i := range m {
			for j := range n {
				var want float64
				for p := range k {
					ai, bi := i*lda+p, p*ldb+j
					if tr.a {
						ai = p*lda + i
					}
					if tr.b {
						bi = j*ldb + p
					}
					x, y := a[ai], b[bi]
					want += float64(x) * float64(y)
				}
				if d := math.Abs(float64(got[i*n+j]) - want); d > 1e-4*(1+math.Abs(want)) {
					t.Fatalf("transA %v transB %v: C[%d,%d] = %v, want %v", tr.a, tr.b, i, j, got[i*n+j], want)
				}
			}
		}
	}
}
