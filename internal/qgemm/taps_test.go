package qgemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// tapsCase is one ConvTaps call: o output channels, c input channels, nt
// taps at random offsets below maxOff, positions computed, groups gs
// positions apart (gs ≥ the positions read).
type tapsCase struct {
	o, c, nt, positions, maxOff int
	extreme                     bool
	seed                        uint64
}

func (tc tapsCase) String() string {
	return fmt.Sprintf("o%d_c%d_t%d_p%d_off%d_ext%v", tc.o, tc.c, tc.nt, tc.positions, tc.maxOff, tc.extreme)
}

// TestConvTaps: every implementation's sums are the plain formula's, on
// channel counts around the 4-channel groups and the 15-channel tiles,
// position counts around the 32-position blocks, and the largest products
// (codes 255 against weights -128 and 127).
func TestConvTaps(t *testing.T) {
	var cases []tapsCase
	rng := rand.New(rand.NewPCG(21, 22))
	for _, o := range []int{1, 2, 11, 15, 16, 25, 31, 49} {
		for _, c := range []int{1, 3, 4, 5, 11, 25} {
			nt := []int{1, 2, 9}[rng.IntN(3)]
			p := []int{1, 31, 32, 33, 61, 838}[rng.IntN(6)]
			cases = append(cases, tapsCase{o: o, c: c, nt: nt, positions: p, maxOff: rng.IntN(70), extreme: rng.IntN(5) == 0, seed: rng.Uint64()})
		}
	}
	for _, tc := range cases {
		t.Run(tc.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tc.seed, 1))
			w := make([]int8, tc.o*tc.c*tc.nt)
			for i := range w {
				w[i] = int8(rng.IntN(256) - 128)
				if tc.extreme {
					w[i] = []int8{-128, 127}[rng.IntN(2)]
				}
			}
			off := make([]int, tc.nt)
			for i := range off {
				off[i] = rng.IntN(tc.maxOff + 1)
			}
			off[rng.IntN(tc.nt)] = tc.maxOff
			p := roundUp(tc.positions, TapBlock)
			gs := p + tc.maxOff + rng.IntN(3)
			cg := (tc.c + 3) / 4
			a := make([]uint8, ((cg-1)*gs+p+tc.maxOff)*4) // exactly what ConvTaps asks for
			for i := range a {
				a[i] = uint8(rng.UintN(256))
				if tc.extreme {
					a[i] = 255
				}
			}
			want := make([]int32, tc.o*p)
			for j := 0; j < tc.o; j++ {
				for q := 0; q < p; q++ {
					var s int32
					for ch := 0; ch < tc.c; ch++ {
						for ti, to := range off {
							s += int32(a[((ch/4)*gs+q+to)*4+ch%4]) * int32(w[(j*tc.c+ch)*tc.nt+ti])
						}
					}
					want[j*p+q] = s
				}
			}
			f := PackTaps(w, tc.o, tc.c, tc.nt)
			for j, s := range f.RowSums() {
				var ws int32
				for _, v := range w[j*tc.c*tc.nt : (j+1)*tc.c*tc.nt] {
					ws += int32(v)
				}
				if s != ws {
					t.Fatalf("row sum %d = %d, want %d", j, s, ws)
				}
			}
			for _, name := range impls() {
				withImpl(t, name, func() {
					ldc := p + 7
					got := make([]int32, (tc.o-1)*ldc+p)
					for i := range got {
						got[i] = -12345
					}
					ConvTaps(tc.positions, a, gs, off, f, got, ldc)
					for j := 0; j < tc.o; j++ {
						for q := 0; q < p; q++ {
							if g := got[j*ldc+q]; g != want[j*p+q] {
								t.Fatalf("%s: channel %d position %d: %d, want %d", name, j, q, g, want[j*p+q])
							}
						}
					}
					if j := tc.o - 1; j > 0 && got[j*ldc-1] != -12345 {
						t.Fatalf("%s: wrote between channels' rows", name)
					}
				})
			}
		})
	}
}

func TestConvTapsPanics(t *testing.T) {
	f := PackTaps(make([]int8, 2*5*3), 2, 5, 3)
	a := make([]uint8, (40+32+4)*4)
	c := make([]int32, 64)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"offsets", func() { ConvTaps(32, a, 40, []int{0, 1}, f, c, 32) }},
		{"negative offset", func() { ConvTaps(32, a, 40, []int{0, -1, 2}, f, c, 32) }},
		{"short a", func() { ConvTaps(32, a, 40, []int{0, 1, 5}, f, c, 32) }},
		{"short c", func() { ConvTaps(32, a, 40, []int{0, 1, 2}, f, c[:63], 32) }},
		{"ldc", func() { ConvTaps(33, a, 40, []int{0, 1, 2}, f, c, 32) }},
		{"pack", func() { PackTaps(make([]int8, 5), 2, 5, 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tc.f()
		})
	}
	ConvTaps(32, a, 40, []int{0, 1, 4}, f, c, 32) // the largest that fits
}

// TestQuantizeGroup: the interleaved codes are refCode's, every tail
// length, NaN, infinities and values out of range included.
func TestQuantizeGroup(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e30, -1e30, 0.5, 1.5, 2.5, -0.5, -2.5}
	for _, n := range []int{1, 3, 7, 8, 9, 16, 28, 49, 100} {
		var x [4][]float32
		for ch := range x {
			x[ch] = make([]float32, n)
			for i := range x[ch] {
				if rng.IntN(6) == 0 {
					x[ch][i] = special[rng.IntN(len(special))]
				} else {
					x[ch][i] = float32(rng.NormFloat64() * 3)
				}
			}
		}
		for _, r := range []Range{Full, Reduced} {
			for _, p := range []Params{{Scale: 0.0371, ZeroPoint: 117}, {Scale: 0.01, ZeroPoint: 3}} {
				for _, name := range impls() {
					withImpl(t, name, func() {
						q := make([]uint8, 4*n+5)
						QuantizeGroup(n, x[0], x[1], x[2], x[3], p, r, q)
						inv := 1 / p.Scale
						for i := 0; i < n; i++ {
							for ch := range x {
								if w := refCode(x[ch][i], inv, p.ZeroPoint, r); q[4*i+ch] != w {
									t.Fatalf("n=%d %s: code(%v) = %d, want %d", n, name, x[ch][i], q[4*i+ch], w)
								}
							}
						}
						for _, v := range q[4*n:] {
							if v != 0 {
								t.Fatalf("n=%d %s: wrote past the group", n, name)
							}
						}
					})
				}
			}
		}
	}
}

// BenchmarkConvTaps times one image of a pruned ResNet-20's stride-1
// convolutions (3×3, padding 1) on each stage's grid; GMAC/s counts the
// products computed, positions and channels rounded up included.
func BenchmarkConvTaps(b *testing.B) {
	for _, s := range []struct{ c, o, side int }{{11, 11, 28}, {25, 23, 14}, {42, 45, 7}} {
		wp := s.side + 2
		m := (s.side-1)*wp + s.side
		p := roundUp(m, TapBlock)
		off := []int{0, 1, 2, wp, wp + 1, wp + 2, 2 * wp, 2*wp + 1, 2*wp + 2}
		gs := max(wp*wp, p+2*wp+2)
		f := PackTaps(make([]int8, s.o*s.c*9), s.o, s.c, 9)
		a := make([]uint8, f.Groups()*gs*4)
		c := make([]int32, s.o*p)
		b.Run(fmt.Sprintf("%dx%dx%d_to_%d", s.c, s.side, s.side, s.o), func(b *testing.B) {
			for range b.N {
				ConvTaps(m, a, gs, off, f, c, p)
			}
			macs := float64(p * s.o * 9 * f.Groups() * 4)
			b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}
