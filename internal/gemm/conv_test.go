package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// tapsCase is a convolution-like product: an image of rows×k values (rows
// at stride lda) read at one offset per tap.
type tapsCase struct {
	m, n, k, taps int
	lda           int
	alpha, beta   float32
}

// tapsCases cover the ResNet shapes (k = channels, n = output channels) and
// ragged edges, one tap and more taps than fit in one k block.
var tapsCases = []tapsCase{
	{812, 16, 16, 9, 16, 1, 0},    // 28x28, 16 channels, one image
	{311, 32, 32, 9, 32, 1, 0.5},  // 14x14 stacked
	{255, 64, 64, 9, 64, -1.5, 1}, // 7x7 stacked: three k blocks
	{29, 16, 1, 9, 1, 1, 0},       // the stem: one input channel
	{13, 7, 5, 1, 6, 2, 0},        // one tap
	{50, 40, 3, 25, 4, 1, 0.25},   // 5x5 taps
	{1, 16, 16, 9, 16, 1, 0},      // one row
	{30, 1, 16, 9, 16, 1, 0},      // one column
	// Weight gradients: few rows (input channels), long k (positions).
	{16, 16, 300, 9, 310, 1, 0},
	{32, 32, 200, 9, 210, 1, 0.5},
	{64, 64, 100, 9, 100, -1, 1},
}

func (tc tapsCase) String() string {
	return fmt.Sprintf("%dx%dx%d_taps%d_lda%d_a%g_b%g", tc.m, tc.n, tc.k, tc.taps, tc.lda, tc.alpha, tc.beta)
}

// operands: offsets that overlap like a 3x3 window's (row width 29), A long
// enough for the largest, B [taps·k, n] and C [m, n+2].
func (tc tapsCase) operands(seed uint64) (off []int, a, b, c []float32, ldb, ldc int) {
	r := rand.New(rand.NewPCG(seed, 3))
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(r.NormFloat64())
		}
		return s
	}
	for t := 0; t < tc.taps; t++ {
		off = append(off, ((t/3)*29+t%3)*tc.lda)
	}
	ldb, ldc = tc.n+1, tc.n+2
	a = fill(off[len(off)-1] + (tc.m-1)*tc.lda + tc.k)
	b = fill((tc.taps*tc.k-1)*ldb + tc.n)
	c = fill((tc.m-1)*ldc + tc.n)
	return
}

func TestTaps(t *testing.T) {
	results := map[string][]float32{}
	for _, name := range impls() {
		t.Run(name, func(t *testing.T) {
			withImpl(t, name, func() {
				for i, tc := range tapsCases {
					off, a, b, c, ldb, ldc := tc.operands(uint64(i))
					want := slices.Clone(c)
					var scale float64
					for r := 0; r < tc.m; r++ {
						for j := 0; j < tc.n; j++ {
							var s, sa float64
							for q, o := range off {
								for p := 0; p < tc.k; p++ {
									v := float64(a[o+r*tc.lda+p]) * float64(b[(q*tc.k+p)*ldb+j])
									s += v
									sa += math.Abs(v)
								}
							}
							want[r*ldc+j] = float32(float64(tc.alpha)*s + float64(tc.beta)*float64(c[r*ldc+j]))
							scale = max(scale, sa)
						}
					}
					Taps(tc.m, tc.n, tc.k, off, tc.alpha, a, tc.lda, b, ldb, tc.beta, c, ldc)
					for e := range want {
						if d := math.Abs(float64(c[e]) - float64(want[e])); d > 1e-5*scale {
							t.Fatalf("%v: C[%d] = %v, want %v", tc, e, c[e], want[e])
						}
					}
					if name != "purego" {
						if prev, ok := results[tc.String()]; ok && !slices.EqualFunc(prev, c, sameBits) {
							t.Errorf("%v: the asm families disagree", tc)
						}
						results[tc.String()] = c
					}
				}
			})
		})
	}
}

// TestShiftedA checks each tap's product against Sgemm's bits.
func TestShiftedA(t *testing.T) {
	for _, name := range impls() {
		t.Run(name, func(t *testing.T) {
			withImpl(t, name, func() {
				for i, tc := range tapsCases {
					if tc.m == 1 || tc.n == 1 {
						continue // Sgemm takes its matrix-vector path there
					}
					for _, transB := range []bool{false, true} {
						// A_t is m×kk at lda; B is kk×n: the weight gradient's shapes.
						kk := tc.k
						off, a, _, _, _, _ := tc.operands(uint64(i))
						r := rand.New(rand.NewPCG(uint64(i), 9))
						ldb := tc.n + 3
						if transB {
							ldb = kk + 3
						}
						rowsB := kk
						if transB {
							rowsB = tc.n
						}
						b := make([]float32, rowsB*ldb)
						c := make([]float32, len(off)*tc.m*(tc.n+1))
						for j := range b {
							b[j] = float32(r.NormFloat64())
						}
						for j := range c {
							c[j] = float32(r.NormFloat64())
						}
						want := slices.Clone(c)
						ldc := tc.n + 1
						for q, o := range off {
							Sgemm(false, transB, tc.m, tc.n, kk, tc.alpha, a[o:], tc.lda, b, ldb, tc.beta, want[q*tc.m*ldc:], ldc)
						}
						ShiftedA(tc.m, tc.n, kk, off, tc.alpha, a, tc.lda, transB, b, ldb, tc.beta, c, ldc)
						if !slices.EqualFunc(c, want, sameBits) {
							t.Fatalf("%v transB %v: ShiftedA differs from Sgemm per tap", tc, transB)
						}
					}
				}
			})
		})
	}
}

func TestConvProductsDoNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tc := tapsCases[0]
	off, a, b, c, ldb, ldc := tc.operands(1)
	Taps(tc.m, tc.n, tc.k, off, 1, a, tc.lda, b, ldb, 0, c, ldc)
	if n := testing.AllocsPerRun(20, func() { Taps(tc.m, tc.n, tc.k, off, 1, a, tc.lda, b, ldb, 0, c, ldc) }); n != 0 {
		t.Errorf("Taps allocates %v times", n)
	}
	cs := make([]float32, len(off)*16*16)
	ShiftedA(16, 16, 16, off, 1, a, tc.lda, false, b, ldb, 0, cs, 16)
	if n := testing.AllocsPerRun(20, func() { ShiftedA(16, 16, 16, off, 1, a, tc.lda, false, b, ldb, 0, cs, 16) }); n != 0 {
		t.Errorf("ShiftedA allocates %v times", n)
	}
}

func TestTranspose(t *testing.T) {
	for _, name := range impls() {
		t.Run(name, func(t *testing.T) {
			withImpl(t, name, func() {
				for _, s := range [][4]int{{1, 1, 1, 1}, {8, 8, 8, 8}, {16, 28, 784, 16}, {28, 16, 16, 784}, {13, 21, 30, 17}, {64, 7, 49, 64}, {7, 64, 64, 49}} {
					m, n, lds, ldd := s[0], s[1], s[2], s[3]
					src := make([]float32, (m-1)*lds+n)
					for i := range src {
						src[i] = float32(i)
					}
					dst := make([]float32, (n-1)*ldd+m)
					for i := range dst {
						dst[i] = -1
					}
					Transpose(m, n, src, lds, dst, ldd)
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							if dst[j*ldd+i] != src[i*lds+j] {
								t.Fatalf("%v: dst[%d][%d] = %v, want %v", s, j, i, dst[j*ldd+i], src[i*lds+j])
							}
						}
					}
					for j := 0; j < n; j++ {
						for i := m; i < ldd && j*ldd+i < len(dst); i++ {
							if dst[j*ldd+i] != -1 {
								t.Fatalf("%v: wrote dst[%d][%d] past the block", s, j, i)
							}
						}
					}
				}
			})
		})
	}
}

// Taps gives the same bits whichever tile of the family pickTaps chooses:
// the pruned widths (12, 22, 42, 45 output channels) run on the narrow
// tile where it pads less, and must match the wide tile's results.
func TestTapsTileChoiceKeepsBits(t *testing.T) {
	for _, name := range impls() {
		if name == "purego" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			withImpl(t, name, func() {
				prev := active.Load()
				if prev.narrow == nil {
					t.Skip("one tile")
				}
				wideOnly := *prev
				wideOnly.narrow = nil
				for i, tc := range []tapsCase{
					{812, 12, 12, 9, 12, 1, 0},
					{311, 22, 22, 9, 22, 1, 0},
					{255, 42, 42, 9, 42, 1, 0},
					{97, 45, 42, 9, 45, 1, 0.5},
					{30, 40, 24, 9, 26, 1, 0},
				} {
					off, a, b, c, ldb, ldc := tc.operands(uint64(i))
					got := slices.Clone(c)
					Taps(tc.m, tc.n, tc.k, off, tc.alpha, a, tc.lda, b, ldb, tc.beta, got, ldc)
					active.Store(&wideOnly)
					Taps(tc.m, tc.n, tc.k, off, tc.alpha, a, tc.lda, b, ldb, tc.beta, c, ldc)
					active.Store(prev)
					if !slices.EqualFunc(got, c, sameBits) {
						t.Errorf("%v: %s's tiles disagree", tc, name)
					}
					if k := prev.pickTaps(tc.n); k == prev.wide && roundUp(tc.n, prev.narrow.nr) < roundUp(tc.n, prev.wide.nr) {
						t.Errorf("%v: picked the wide tile", tc)
					}
				}
			})
		})
	}
}
