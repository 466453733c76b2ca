package gemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSgemv checks Sgemv against a float64 reference for both transposes,
// positive and negative increments, padded rows and all beta cases.
func TestSgemv(t *testing.T) {
	for _, name := range impls() {
		t.Run(name, func(t *testing.T) {
			withImpl(t, name, func() {
				r := rand.New(rand.NewPCG(3, 4))
				for _, s := range [][2]int{{1, 1}, {1, 9}, {9, 1}, {4, 16}, {5, 17}, {37, 300}, {300, 37}, {64, 129}, {7, 784}} {
					for _, trans := range []bool{false, true} {
						for _, inc := range [][2]int{{1, 1}, {2, 3}, {-1, 1}, {1, -2}} {
							for _, ab := range [][2]float32{{1, 0}, {-0.5, 2}, {0, 0}, {0, 1}} {
								checkGemv(t, r, trans, s[0], s[1], s[1]+2, inc[0], inc[1], ab[0], ab[1])
							}
						}
					}
				}
			})
		})
	}
}

func checkGemv(t *testing.T, r *rand.Rand, trans bool, m, n, lda, incX, incY int, alpha, beta float32) {
	t.Helper()
	lenX, lenY := n, m
	if trans {
		lenX, lenY = m, n
	}
	abs := func(i int) int { return max(i, -i) }
	a := make([]float32, (m-1)*lda+n)
	x := make([]float32, (lenX-1)*abs(incX)+1)
	y := make([]float32, (lenY-1)*abs(incY)+1)
	for _, s := range [][]float32{a, x, y} {
		for i := range s {
			s[i] = float32(r.NormFloat64())
		}
	}
	if beta == 0 {
		for i := range y {
			y[i] = float32(math.NaN())
		}
	}
	// Logical element i of a strided vector.
	at := func(inc, n, i int) int {
		if inc < 0 {
			return (n - 1 - i) * -inc
		}
		return i * inc
	}
	want := make([]float64, lenY)
	scale := make([]float64, lenY)
	for i := 0; i < lenY; i++ {
		var s, sa float64
		for p := 0; p < lenX; p++ {
			var av float32
			if trans {
				av = a[p*lda+i]
			} else {
				av = a[i*lda+p]
			}
			v := float64(av) * float64(x[at(incX, lenX, p)])
			s += v
			sa += math.Abs(v)
		}
		want[i] = float64(alpha) * s
		scale[i] = math.Abs(float64(alpha)) * sa
		if beta != 0 {
			cv := float64(beta) * float64(y[at(incY, lenY, i)])
			want[i] += cv
			scale[i] += math.Abs(cv)
		}
	}
	Sgemv(trans, m, n, alpha, a, lda, x, incX, beta, y, incY)
	tol := 1e-5 * math.Sqrt(float64(lenX))
	for i := 0; i < lenY; i++ {
		got := y[at(incY, lenY, i)]
		if d := math.Abs(float64(got) - want[i]); !(d <= tol*scale[i]+1e-30) {
			t.Fatalf("trans=%v m=%d n=%d inc=%d,%d alpha=%g beta=%g: y[%d] = %v, want %v", trans, m, n, incX, incY, alpha, beta, i, got, want[i])
		}
	}
}

// TestGoOneRowMatchesItsRowInABatch: on the Go implementation (machines
// without AVX2, other architectures, SHRINK_GEMM=purego) a product of one
// row, which runs as a matrix-vector product, gives the bits that row gets
// inside a product of many, so a sample's result does not depend on its
// batch (calibration, eval at any batch size). Depths cross the k blocks.
func TestGoOneRowMatchesItsRowInABatch(t *testing.T) {
	withImpl(t, "purego", func() {
		r := rand.New(rand.NewPCG(5, 6))
		for _, k := range []int{1, 3, 7, 255, 256, 257, 300, 784, 1100} {
			for _, transB := range []bool{false, true} {
				for _, beta := range []float32{0, 0.5} {
					const m, n = 9, 13
					a, b := randVec(r, m*k), randVec(r, k*n)
					ldb := n
					if transB {
						ldb = k
					}
					c0 := randVec(r, m*n)
					many := append([]float32(nil), c0...)
					SgemmSerial(false, transB, m, n, k, 0.75, a, k, b, ldb, beta, many, n)
					for i := range m {
						one := append([]float32(nil), c0[i*n:(i+1)*n]...)
						SgemmSerial(false, transB, 1, n, k, 0.75, a[i*k:(i+1)*k], k, b, ldb, beta, one, n)
						for j := range n {
							if math.Float32bits(one[j]) != math.Float32bits(many[i*n+j]) {
								t.Fatalf("k=%d transB=%v beta=%v: row %d col %d alone %v, in the batch %v", k, transB, beta, i, j, one[j], many[i*n+j])
							}
						}
					}
				}
			}
		}
	})
}

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}
