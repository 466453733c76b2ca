package vec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func randomSlice(r *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64() * scale)
	}
	return s
}

// TestAdamAssemblyMatchesGo: the AVX2 kernel and the Go loop give the same bits,
// for every length (tails included), with and without a mask, over many steps.
func TestAdamAssemblyMatchesGo(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 here: only the Go update runs")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 8, 9, 31, 64, 1000, 4097} {
		for _, masked := range []bool{false, true} {
			w := randomSlice(r, n, 0.1)
			var mask []float32
			if masked {
				mask = make([]float32, n)
				for i := range mask {
					if r.IntN(3) > 0 {
						mask[i] = 1
					} else {
						w[i] = 0
					}
				}
			}
			w2 := slices.Clone(w)
			m, v := make([]float32, n), make([]float32, n)
			m2, v2 := make([]float32, n), make([]float32, n)
			for step := 1; step <= 5; step++ {
				g := randomSlice(r, n, 0.01)
				c := consts(step)
				Adam(w, g, m, v, mask, c)
				adamScalar(w2, g, m2, v2, mask, c)
			}
			for i := range w {
				if math.Float32bits(w[i]) != math.Float32bits(w2[i]) || m[i] != m2[i] || v[i] != v2[i] {
					t.Fatalf("n=%d masked=%v: entry %d differs: %g vs %g", n, masked, i, w[i], w2[i])
				}
				if masked && mask[i] == 0 && w[i] != 0 {
					t.Fatalf("n=%d: masked entry %d revived to %g", n, i, w[i])
				}
			}
		}
	}
}

func consts(step int) *Consts {
	b1, b2 := 0.9, 0.999
	return &Consts{B1: float32(b1), OneMinusB1: 1 - float32(b1), B2: float32(b2), OneMinusB2: 1 - float32(b2),
		WeightDecay: 1e-4, Eps: 1e-8, StepSize: float32(1e-3 / (1 - math.Pow(b1, float64(step)))),
		Bc2Sqrt: float32(math.Sqrt(1 - math.Pow(b2, float64(step))))}
}

func BenchmarkAdam(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 266200 // LeNet-300-100's weights
	w, g := randomSlice(r, n, 0.1), randomSlice(r, n, 0.01)
	m, v := make([]float32, n), make([]float32, n)
	c := consts(3)
	b.Run("asm", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			Adam(w, g, m, v, nil, c)
		}
	})
	b.Run("go", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			adamScalar(w, g, m, v, nil, c)
		}
	})
}
