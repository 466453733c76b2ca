package vec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// AddReLU gives the scalar loop's bits on every length (the
// vector loop and its tail) and on the values where max is subtle: NaN,
// -0, infinities, subnormals.
func TestAddReLUMatchesScalar(t *testing.T) {
	special := []float32{float32(math.NaN()), float32(math.Copysign(0, -1)), 0, float32(math.Inf(1)), float32(math.Inf(-1)), 1e-45, -1e-45, -1, 1}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 7, 8, 9, 16, 23, 100} {
		t.Run("", func(t *testing.T) {
			x := make([]float32, n)
			r := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
				r[i] = float32(rng.NormFloat64())
				if rng.IntN(3) == 0 {
					x[i] = special[rng.IntN(len(special))]
				}
				if rng.IntN(3) == 0 {
					r[i] = special[rng.IntN(len(special))]
				}
			}
			wantAdd := make([]float32, n)
			for i, v := range x {
				wantAdd[i] = max(v+r[i], 0)
			}
			gotAdd := slices.Clone(x)
			AddReLU(gotAdd, r)
			for i := range x {
				if math.Float32bits(gotAdd[i]) != math.Float32bits(wantAdd[i]) {
					t.Errorf("n=%d: AddReLU(%g, %g) = %g, want %g", n, x[i], r[i], gotAdd[i], wantAdd[i])
				}
			}
		})
	}
}
