//go:build amd64 && !purego

package qgemm

import (
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

// Every VNNI tile, forced as the only one, computes the exact product on
// shapes around its edges (pickVNNI chooses among them by shape, so the
// shape tests alone reach each tile on some sizes only).
func TestVNNITiles(t *testing.T) {
	if !cpu.X86.HasAVX512F || !cpu.X86.HasAVX512VNNI {
		t.Skip("no AVX-512 VNNI")
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for _, tl := range []*tile{vnni12x32, vnni8x48, vnni6x64, vnni4x64, vnni24x16, vnni1x64} {
		t.Run(tl.name, func(t *testing.T) {
			prev := active.Load()
			defer active.Store(prev)
			im := *chooseImpl("vnni")
			im.pick = func(int, int, Range) *tile { return tl }
			active.Store(&im)
			for _, m := range []int{1, 5, 6, 7, 13, 25, 130} {
				for _, n := range []int{1, 10, 33, 63, 64, 65, 100, 129, 300} {
					k := []int{1, 3, 4, 28, 100, 300, 1030}[rng.IntN(7)]
					check(t, mmCase{m: m, n: n, k: k, r: []Range{Full, Reduced}[rng.IntN(2)], padA: rng.IntN(3) * 3, padC: rng.IntN(2) * 5, tight: rng.IntN(2) == 0, seed: rng.Uint64()})
				}
			}
		})
	}
}

// BenchmarkTiles compares the candidate tiles of each family on the
// batch-256 shapes, each as the only tile of its implementation. It is
// how pickVNNI's and pickAVX2's tiles were chosen.
func BenchmarkTiles(b *testing.B) {
	type cand struct {
		impl string
		r    Range
		t    *tile
	}
	var cands []cand
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI {
		for _, t := range []*tile{vnni12x32, vnni8x48, vnni6x64, vnni4x64, vnni24x16} {
			cands = append(cands, cand{"vnni", Full, t})
		}
	}
	for _, t := range []*tile{u7x4x16, u7x5x16, u7x6x16} {
		cands = append(cands, cand{"avx2", Reduced, t})
	}
	for _, t := range []*tile{u8x6x8, u8x4x8, u8x2x16} {
		cands = append(cands, cand{"avx2", Full, t})
	}
	for _, s := range benchShapes {
		if s.m == 1 {
			continue
		}
		ops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		rng := rand.New(rand.NewPCG(1, 2))
		a := make([]uint8, s.m*s.k)
		for i := range a {
			a[i] = uint8(rng.UintN(128))
		}
		w := make([]int8, s.n*s.k)
		for i := range w {
			w[i] = int8(rng.IntN(256) - 128)
		}
		p := Pack(w, s.n, s.k)
		c := make([]int32, s.m*s.n)
		for _, cd := range cands {
			b.Run(s.name+"/"+cd.t.name, func(b *testing.B) {
				prev := active.Load()
				defer active.Store(prev)
				im := *chooseImpl(cd.impl)
				im.pick = func(int, int, Range) *tile { return cd.t }
				active.Store(&im)
				for range b.N {
					MatMul(s.m, a, s.k, cd.r, p, c, s.n)
				}
				b.ReportMetric(ops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
			})
		}
	}
}
