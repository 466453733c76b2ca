package gemm_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/gemm"
)

// recBLAS records the float32 level-2/3 calls gorgonia makes.
type recBLAS struct {
	gemm.BLAS
	calls *[]string
}

func tr(t blas.Transpose) string {
	if t == blas.NoTrans {
		return "N"
	}
	return "T"
}

func (r recBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	*r.calls = append(*r.calls, fmt.Sprintf("Sgemm(%s%s m=%d n=%d k=%d lda=%d ldb=%d ldc=%d beta=%g)", tr(tA), tr(tB), m, n, k, lda, ldb, ldc, beta))
	r.BLAS.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (r recBLAS) Sgemv(tA blas.Transpose, m, n int, alpha float32, a []float32, lda int, x []float32, incX int, beta float32, y []float32, incY int) {
	*r.calls = append(*r.calls, fmt.Sprintf("Sgemv(%s m=%d n=%d lda=%d)", tr(tA), m, n, lda))
	r.BLAS.Sgemv(tA, m, n, alpha, a, lda, x, incX, beta, y, incY)
}

func (r recBLAS) Sger(m, n int, alpha float32, x []float32, incX int, y []float32, incY int, a []float32, lda int) {
	*r.calls = append(*r.calls, fmt.Sprintf("Sger(m=%d n=%d)", m, n))
	r.BLAS.Sger(m, n, alpha, x, incX, y, incY, a, lda)
}

func randMat(r *rand.Rand, rows, cols int) []float32 {
	s := make([]float32, rows*cols)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// naive returns op(A)·op(B) for row-major A and B.
func naive(tA, tB bool, m, n, k int, a, b []float32) []float64 {
	c := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				av, bv := a[i*k+p], b[p*n+j]
				if tA {
					av = a[p*m+i]
				}
				if tB {
					bv = b[j*k+p]
				}
				s += float64(av) * float64(bv)
			}
			c[i*n+j] = s
		}
	}
	return c
}

func closeTo(t *testing.T, what string, got []float32, want []float64, k int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); d > 1e-5*math.Sqrt(float64(k))*(1+math.Abs(want[i]))*4 {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

// TestGorgoniaMul runs Mul and its gradients through gorgonia's tape
// machine with gemm.BLAS installed, checks them against a naive product,
// and logs the BLAS calls gorgonia made (run with -v to see them).
func TestGorgoniaMul(t *testing.T) {
	var calls []string
	G.Use(recBLAS{calls: &calls})
	defer G.Use(gonum.Implementation{})

	const m, k, n = 37, 53, 29
	r := rand.New(rand.NewPCG(1, 2))
	xd, wd, vd := randMat(r, m, k), randMat(r, k, n), randMat(r, k, 1)

	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(m, k), G.WithName("x"), G.WithValue(tensor.New(tensor.WithShape(m, k), tensor.WithBacking(append([]float32(nil), xd...)))))
	w := G.NewMatrix(g, tensor.Float32, G.WithShape(k, n), G.WithName("w"), G.WithValue(tensor.New(tensor.WithShape(k, n), tensor.WithBacking(append([]float32(nil), wd...)))))
	v := G.NewVector(g, tensor.Float32, G.WithShape(k), G.WithName("v"), G.WithValue(tensor.New(tensor.WithShape(k), tensor.WithBacking(append([]float32(nil), vd...)))))
	xw := G.Must(G.Mul(x, w)) // m×n: Sgemm
	xv := G.Must(G.Mul(x, v)) // m: Sgemv
	cost := G.Must(G.Add(G.Must(G.Sum(xw)), G.Must(G.Sum(xv))))
	if _, err := G.Grad(cost, x, w, v); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}

	closeTo(t, "x·w", xw.Value().Data().([]float32), naive(false, false, m, n, k, xd, wd), k)
	closeTo(t, "x·v", xv.Value().Data().([]float32), naive(false, false, m, 1, k, xd, vd), k)

	// d(sum(x·w) + sum(x·v))/dx = 1·wᵀ + 1·vᵀ, d/dw = xᵀ·1, d/dv = xᵀ·1.
	ones := make([]float32, m*n)
	for i := range ones {
		ones[i] = 1
	}
	dx := naive(false, true, m, k, n, ones, wd)
	for i := 0; i < m; i++ {
		for p := 0; p < k; p++ {
			dx[i*k+p] += float64(vd[p])
		}
	}
	grad := func(nd *G.Node) []float32 {
		gv, err := nd.Grad()
		if err != nil {
			t.Fatal(err)
		}
		return gv.Data().([]float32)
	}
	closeTo(t, "dx", grad(x), dx, n)
	closeTo(t, "dw", grad(w), naive(true, false, k, n, m, xd, ones), m)
	closeTo(t, "dv", grad(v), naive(true, false, k, 1, m, xd, ones[:m]), m)

	var sawNN, sawNT, sawTN bool
	for _, c := range calls {
		t.Log(c)
		switch c[:8] {
		case "Sgemm(NN":
			sawNN = true
		case "Sgemm(NT":
			sawNT = true
		case "Sgemm(TN":
			sawTN = true
		}
	}
	if !sawNN || !sawNT || !sawTN {
		t.Errorf("expected Sgemm NN (forward), NT (dx) and TN (dw) among the calls")
	}
}
