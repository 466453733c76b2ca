package qgemm

import (
	"math/rand/v2"
	"testing"
)

// MatMulAdd adds the exact product to C, with rows of A that overlap
// (lda < k, a convolution's taps over a channels-last image) or not, on
// every implementation, the whole of A tight (no slack after its last
// row) so reads past it would fault or differ.
func TestMatMulAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	type shape struct{ m, n, k, lda int }
	var shapes []shape
	for _, m := range []int{1, 3, 4, 13, 25, 130} {
		for _, n := range []int{1, 16, 17, 33, 64} {
			for _, k := range []int{1, 3, 4, 48, 144, 1100} {
				for _, lda := range []int{1, 3, max(1, k/3), k, k + 5} {
					shapes = append(shapes, shape{m, n, k, lda})
				}
			}
		}
	}
	for _, name := range impls() {
		for _, r := range []Range{Reduced, Full} {
			withImpl(t, name, func() {
				for _, s := range shapes {
					a := make([]uint8, (s.m-1)*s.lda+s.k)
					for i := range a {
						a[i] = uint8(rng.UintN(uint(r) + 1))
					}
					b := make([]int8, s.n*s.k)
					for i := range b {
						b[i] = int8(rng.IntN(256) - 128)
					}
					c := make([]int32, s.m*s.n)
					start := make([]int32, len(c))
					for i := range c {
						start[i] = int32(rng.IntN(1<<20) - 1<<19)
						c[i] = start[i]
					}
					MatMulAdd(s.m, a, s.lda, r, Pack(b, s.n, s.k), c, s.n)
					want := refMatMul(s.m, s.n, s.k, a, s.lda, b)
					for i, w := range want {
						if got := c[i]; int64(got) != int64(start[i])+w {
							t.Fatalf("%s r%d %v: C[%d] = %d, want %d", name, r, s, i, got, int64(start[i])+w)
						}
					}
				}
			})
		}
	}
}

func TestMatMulAddPanics(t *testing.T) {
	p := Pack(make([]int8, 4*8), 4, 8)
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"lda 0", func() { MatMulAdd(2, make([]uint8, 16), 0, Reduced, p, make([]int32, 8), 4) }},
		{"short a", func() { MatMulAdd(3, make([]uint8, 9), 1, Reduced, p, make([]int32, 12), 4) }},
		{"short c", func() { MatMulAdd(3, make([]uint8, 10), 1, Reduced, p, make([]int32, 11), 4) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			c.f()
		})
	}
}
