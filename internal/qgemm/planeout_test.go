package qgemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestEpilogueOutput: every step combination of the fused output pass
// gives, on every implementation, the bits of the separate passes
// (DequantizePlane, the norm's v·a + b, the add, Go's max, refCode), with
// zeros, NaN and values far out of the codes' range among them, on row
// lengths around the vector widths; the other bytes of the codes and the
// values past each row stay untouched.
func TestEpilogueOutput(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	o, c, nt := 3, 5, 2
	w := make([]int8, o*c*nt)
	for i := range w {
		w[i] = int8(rng.IntN(256) - 128)
	}
	f := PackTaps(w, o, c, nt)
	e := NewTapsEpilogue(Params{Scale: 0.0371, ZeroPoint: 117}, f, []float32{0.003, 0.01, 0.0004}, []float32{0.5, float32(math.NaN()), -1})
	for _, n := range []int{1, 7, 15, 16, 17, 28, 33} {
		for flags := 0; flags < 32; flags++ {
			if flags&(8|16) == 0 {
				continue // stores nothing
			}
			t.Run(fmt.Sprintf("n=%d/flags=%05b", n, flags), func(t *testing.T) {
				m, ldacc, ldy, ldq := 3, n+5, n+2, 4*n+9
				acc := make([]int32, (m-1)*ldacc+n)
				for i := range acc {
					acc[i] = int32(rng.Uint32() >> uint(rng.IntN(28)))
					if rng.IntN(8) == 0 {
						acc[i] = 117 * f.RowSums()[0]
					}
				}
				res := make([]float32, (m-1)*ldy+n)
				for i := range res {
					res[i] = float32(rng.NormFloat64() * 10)
					if rng.IntN(10) == 0 {
						res[i] = float32(math.Inf(1 - 2*rng.IntN(2)))
					}
				}
				for _, j := range []int{0, 2} {
					for lane := 0; lane < 4; lane++ {
						out := PlaneOutput{Norm: flags&1 != 0, Scale: 1.7, Shift: -0.3, ReLU: flags&4 != 0, LdY: ldy, LdCodes: ldq, Lane: lane,
							CodeParams: Params{Scale: 0.02, ZeroPoint: 9}, CodeRange: []Range{Full, Reduced}[lane%2]}
						if flags&2 != 0 {
							out.Res = res
						}
						// the separate passes
						want := make([]float32, (m-1)*ldy+n)
						e.DequantizePlane(j, m, n, acc, ldacc, want, ldy, false)
						for i := 0; i < m; i++ {
							for k := 0; k < n; k++ {
								v := want[i*ldy+k]
								if out.Norm {
									v = float32(v*out.Scale) + out.Shift
								}
								if out.Res != nil {
									v += res[i*ldy+k]
								}
								if out.ReLU {
									v = max(v, 0)
								}
								want[i*ldy+k] = v
							}
						}
						for _, name := range impls() {
							withImpl(t, name, func() {
								var y []float32
								var q []uint8
								if flags&8 != 0 {
									y = make([]float32, (m-1)*ldy+n+3)
									for i := range y {
										y[i] = -7
									}
									out.Y = y[:(m-1)*ldy+n]
								}
								if flags&16 != 0 {
									q = make([]uint8, (m-1)*ldq+4*n+5)
									for i := range q {
										q[i] = 0xaa
									}
									out.Codes = q[:(m-1)*ldq+4*n]
								}
								e.Output(j, m, n, acc, ldacc, &out)
								for i := range y {
									r, k := i/ldy, i%ldy
									wv := float32(-7)
									if r < m && k < n {
										wv = want[i]
									}
									if math.Float32bits(y[i]) != math.Float32bits(wv) {
										t.Fatalf("%s j=%d: y[%d] = %v, want %v", name, j, i, y[i], wv)
									}
								}
								for i := range q {
									r, k := i/ldq, i%ldq
									wq := uint8(0xaa)
									if r < m && k < 4*n && k%4 == lane {
										wq = refCode(want[r*ldy+k/4], 1/out.CodeParams.Scale, out.CodeParams.ZeroPoint, out.CodeRange)
									}
									if q[i] != wq {
										t.Fatalf("%s j=%d lane %d: q[%d] = %d, want %d", name, j, lane, i, q[i], wq)
									}
								}
							})
						}
					}
				}
			})
		}
	}
}
