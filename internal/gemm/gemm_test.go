package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"testing"
)

// impls returns the implementations this machine can run, so that every
// test covers the asm kernels and the pure-Go fallback.
func impls() []string {
	names := []string{"purego"}
	for _, im := range asmImpls() {
		names = append(names, im.name)
	}
	return names
}

// withImpl runs f with implementation name active.
func withImpl(t testing.TB, name string, f func()) {
	t.Helper()
	prev := useImpl(name)
	defer useImpl(prev)
	if got := Impl(); got != name {
		t.Fatalf("useImpl(%q) gave %q", name, got)
	}
	f()
}

// withThreads runs f with SetThreads(n).
func withThreads(n int, f func()) {
	prev := Threads()
	SetThreads(n)
	defer SetThreads(prev)
	f()
}

// gemmCase describes one product; the ld* fields are the extra padding of
// each row beyond what the shape needs.
type gemmCase struct {
	tA, tB      bool
	m, n, k     int
	padA, padB  int
	padC        int
	alpha, beta float32
	nanC        bool // fill C with NaN (only meaningful with beta == 0)
	seed        uint64
}

func (tc gemmCase) String() string {
	t := func(b bool) string {
		if b {
			return "T"
		}
		return "N"
	}
	return fmt.Sprintf("%s%s_%dx%dx%d_pad%d.%d.%d_a%g_b%g", t(tc.tA), t(tc.tB), tc.m, tc.n, tc.k, tc.padA, tc.padB, tc.padC, tc.alpha, tc.beta)
}

// operands builds A, B and C with their leading dimensions. Values are
// small integers times a power of two plus noise so that cancellation is
// rare and the tolerance is meaningful.
func (tc gemmCase) operands() (a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	r := rand.New(rand.NewPCG(tc.seed, 7))
	rowsA, colsA := tc.m, tc.k
	if tc.tA {
		rowsA, colsA = tc.k, tc.m
	}
	rowsB, colsB := tc.k, tc.n
	if tc.tB {
		rowsB, colsB = tc.n, tc.k
	}
	lda, ldb, ldc = max(1, colsA+tc.padA), max(1, colsB+tc.padB), max(1, tc.n+tc.padC)
	fill := func(rows, ld int) []float32 {
		s := make([]float32, rows*ld)
		for i := range s {
			s[i] = float32(r.NormFloat64())
		}
		return s
	}
	a, b, c = fill(rowsA, lda), fill(rowsB, ldb), fill(tc.m, ldc)
	if tc.nanC {
		for i := range c {
			c[i] = float32(math.NaN())
		}
	}
	return
}

// refGemm is the naive product accumulated in float64. It also returns,
// per element, Σ|alpha·a·b| + |beta·c|, the scale of the rounding error.
func refGemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) (want, scale []float64) {
	want = make([]float64, m*n)
	scale = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if tA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if tB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
				sa += math.Abs(float64(av) * float64(bv))
			}
			v := float64(alpha) * s
			sc := math.Abs(float64(alpha)) * sa
			if beta != 0 {
				cv := float64(beta) * float64(c[i*ldc+j])
				v += cv
				sc += math.Abs(cv)
			}
			want[i*n+j], scale[i*n+j] = v, sc
		}
	}
	return want, scale
}

// checkGemm runs Sgemm on tc and compares with refGemm. It also checks
// that the padding of C between rows is untouched.
func checkGemm(t *testing.T, tc gemmCase) []float32 {
	t.Helper()
	a, lda, b, ldb, c, ldc := tc.operands()
	c0 := slices.Clone(c)
	want, scale := refGemm(tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
	Sgemm(tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
	// float32 rounding of a length-k sum grows like sqrt(k) ulps for random
	// data; 1e-5·sqrt(k) relative to the sum of magnitudes has margin.
	tol := 1e-5 * math.Sqrt(float64(max(tc.k, 1)))
	bad := 0
	for i := 0; i < tc.m; i++ {
		for j := 0; j < tc.n+tc.padC && i*ldc+j < len(c); j++ {
			got := c[i*ldc+j]
			if j >= tc.n {
				if !sameBits(got, c0[i*ldc+j]) {
					t.Fatalf("%v: padding C[%d][%d] changed from %v to %v", tc, i, j, c0[i*ldc+j], got)
				}
				continue
			}
			w, s := want[i*tc.n+j], scale[i*tc.n+j]
			if d := math.Abs(float64(got) - w); !(d <= tol*s+1e-30) {
				if bad++; bad <= 5 {
					t.Errorf("%v: C[%d][%d] = %v, want %v (|diff| %.3g > %.3g)", tc, i, j, got, w, d, tol*s)
				}
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%v: %d wrong elements", tc, bad)
	}
	return c
}

func sameBits(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) }

// shapes are the (m, n, k) covered for every transpose combination.
var shapes = [][3]int{
	{1, 1, 1}, {1, 1, 7}, {2, 3, 4}, {7, 13, 5}, {13, 7, 5}, {5, 1, 9}, {1, 9, 5},
	{1, 300, 784}, {300, 1, 17}, {6, 16, 1}, {6, 16, 4}, {12, 32, 5}, {17, 33, 67},
	{31, 6, 25}, {64, 16, 150}, {576, 6, 25}, {100, 10, 100}, {130, 70, 259},
	{128, 10, 100}, {128, 100, 300},
}

// bigShapes are slower to check against the float64 reference.
var bigShapes = [][3]int{{128, 300, 784}, {128, 784, 300}, {300, 784, 128}}

func TestSgemmShapes(t *testing.T) {
	for _, name := range impls() {
		t.Run(name, func(t *testing.T) {
			withImpl(t, name, func() {
				all := shapes
				if !testing.Short() && !raceEnabled {
					all = append(slices.Clone(shapes), bigShapes...)
				}
				seed := uint64(1)
				for _, s := range all {
					for _, tA := range []bool{false, true} {
						for _, tB := range []bool{false, true} {
							seed++
							checkGemm(t, gemmCase{tA: tA, tB: tB, m: s[0], n: s[1], k: s[2], alpha: 1, beta: 0, nanC: true, seed: seed})
							checkGemm(t, gemmCase{tA: tA, tB: tB, m: s[0], n: s[1], k: s[2], padA: 3, padB: 5, padC: 2, alpha: -1.5, beta: 0.5, seed: seed})
						}
					}
				}
			})
		})
	}
}

func TestSgemmAlphaBeta(t *testing.T) {
	for _, name := range impls() {
		t.Run(name, func(t *testing.T) {
			withImpl(t, name, func() {
				for _, s := range [][3]int{{1, 1, 3}, {7, 13, 5}, {40, 50, 600}, {3, 5, 0}} {
					for _, ab := range [][2]float32{{1, 0}, {1, 1}, {2, -1}, {0, 0}, {0, 1}, {0, 3}, {0.25, 2}} {
						for _, tr := range [][2]bool{{false, false}, {true, true}} {
							tc := gemmCase{tA: tr[0], tB: tr[1], m: s[0], n: s[1], k: s[2], padC: 1, alpha: ab[0], beta: ab[1], nanC: ab[1] == 0, seed: 3}
							checkGemm(t, tc)
						}
					}
				}
			})
		})
	}
}

// TestSgemmZeroSizes checks the quick returns: nothing is read or written.
func TestSgemmZeroSizes(t *testing.T) {
	c := []float32{5}
	Sgemm(false, false, 0, 1, 1, 1, nil, 1, []float32{1}, 1, 0, c, 1)
	Sgemm(false, false, 1, 0, 1, 1, []float32{1}, 1, nil, 1, 0, c, 1)
	if c[0] != 5 {
		t.Fatalf("C changed by an empty product: %v", c[0])
	}
	// k == 0: C = beta*C.
	Sgemm(false, false, 1, 1, 0, 1, nil, 1, nil, 1, 2, c, 1)
	if c[0] != 10 {
		t.Fatalf("k == 0, beta 2: C = %v, want 10", c[0])
	}
}

func TestSgemmPanics(t *testing.T) {
	a := make([]float32, 12)
	cases := []struct {
		name string
		f    func()
		want string
	}{
		{"m<0", func() { Sgemm(false, false, -1, 1, 1, 1, a, 1, a, 1, 0, a, 1) }, errMLT0},
		{"lda", func() { Sgemm(false, false, 2, 2, 3, 1, a, 2, a, 2, 0, a, 2) }, errBadLdA},
		{"ldb", func() { Sgemm(false, true, 2, 2, 3, 1, a, 3, a, 2, 0, a, 2) }, errBadLdB},
		{"ldc", func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, a, 2, 0, a, 1) }, errBadLdC},
		{"shortA", func() { Sgemm(false, false, 5, 2, 3, 1, a, 3, a, 2, 0, a, 2) }, errShortA},
		{"shortC", func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, a, 2, 0, a[:3], 2) }, errShortC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != tc.want {
					t.Fatalf("panic %v, want %q", r, tc.want)
				}
			}()
			tc.f()
		})
	}
}

// TestSgemmThreadsBitIdentical checks that 1 and 2 threads give the same
// bits, on shapes large enough to be split both by rows and by columns,
// with ragged edges.
func TestSgemmThreadsBitIdentical(t *testing.T) {
	for _, name := range impls() {
		t.Run(name, func(t *testing.T) {
			withImpl(t, name, func() {
				for _, s := range [][3]int{{128, 300, 784}, {300, 784, 128}, {1000, 100, 300}, {131, 67, 521}, {2049, 6, 400}} {
					for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
						tc := gemmCase{tA: tr[0], tB: tr[1], m: s[0], n: s[1], k: s[2], padA: 1, padC: 3, alpha: 0.75, beta: 0.5, seed: 11}
						if s[0]*s[1]*s[2] < parMinWork {
							t.Fatalf("%v too small to be split", tc)
						}
						var one, two []float32
						withThreads(1, func() { one = runCase(tc) })
						withThreads(2, func() { two = runCase(tc) })
						again := runCase(tc)
						for i := range one {
							if !sameBits(one[i], two[i]) || !sameBits(one[i], again[i]) {
								t.Fatalf("%v: element %d: 1 thread %v, 2 threads %v, again %v", tc, i, one[i], two[i], again[i])
							}
						}
					}
				}
			})
		})
	}
}

func runCase(tc gemmCase) []float32 {
	a, lda, b, ldb, c, ldc := tc.operands()
	Sgemm(tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
	return c
}

// TestImplsAgree checks that all asm kernels of this machine give the
// same bits (they all run one FMA chain per element), and that the
// pure-Go fallback is close.
func TestImplsAgree(t *testing.T) {
	names := impls()
	for _, s := range [][3]int{{128, 300, 784}, {37, 5, 61}, {200, 3, 90}, {3, 200, 90}} {
		tc := gemmCase{tB: true, m: s[0], n: s[1], k: s[2], alpha: 1, beta: 0.5, seed: 5}
		res := map[string][]float32{}
		for _, name := range names {
			withImpl(t, name, func() { res[name] = runCase(tc) })
		}
		for _, name := range names[1:] {
			if name == "purego" || names[1] == "purego" {
				continue
			}
			for i := range res[name] {
				if !sameBits(res[name][i], res[names[1]][i]) {
					t.Fatalf("%v: %s and %s differ at %d: %v vs %v", tc, name, names[1], i, res[name][i], res[names[1]][i])
				}
			}
		}
	}
}

// TestSgemmNoAllocs checks the steady state: packing buffers come from
// the pool, parallel jobs too.
func TestSgemmNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	for _, threads := range []int{1, 2} {
		withThreads(threads, func() {
			for _, s := range [][3]int{{128, 300, 784}, {1, 300, 784}, {64, 16, 150}} {
				tc := gemmCase{m: s[0], n: s[1], k: s[2], alpha: 1, seed: 1}
				a, lda, b, ldb, c, ldc := tc.operands()
				f := func() { Sgemm(false, false, tc.m, tc.n, tc.k, 1, a, lda, b, ldb, 0, c, ldc) }
				f()
				if n := testing.AllocsPerRun(20, f); n != 0 {
					t.Errorf("threads %d, %v: %v allocs per call", threads, s, n)
				}
			}
		})
	}
}

// FuzzSgemm checks random shapes, transposes, paddings and scalars
// against the reference, with every implementation and 1 or 2 threads.
func FuzzSgemm(f *testing.F) {
	f.Add(uint8(7), uint8(13), uint8(5), uint8(0), uint8(0), uint64(1))
	f.Add(uint8(1), uint8(1), uint8(1), uint8(3), uint8(9), uint64(2))
	f.Add(uint8(65), uint8(33), uint8(200), uint8(1), uint8(77), uint64(3))
	f.Fuzz(func(t *testing.T, m, n, k, flags, pads uint8, seed uint64) {
		tc := gemmCase{
			tA: flags&1 != 0, tB: flags&2 != 0,
			m: int(m), n: int(n), k: int(k),
			padA: int(pads & 3), padB: int(pads >> 2 & 3), padC: int(pads >> 4 & 3),
			alpha: []float32{1, -0.5, 0, 2}[flags>>2&3],
			beta:  []float32{0, 1, 0.5, -2}[flags>>4&3],
			seed:  seed,
		}
		tc.nanC = tc.beta == 0
		threads := 1 + int(flags>>6&1)
		for _, name := range impls() {
			withImpl(t, name, func() {
				withThreads(threads, func() { checkGemm(t, tc) })
			})
		}
	})
}

// TestEnvOverride checks that SHRINK_GEMM=purego selects the fallback at
// start-up, by running this test binary again with the variable set.
func TestEnvOverride(t *testing.T) {
	if want := os.Getenv("GEMM_WANT_IMPL"); want != "" {
		if got := Impl(); got != want {
			t.Fatalf("%s=%q: Impl() = %q, want %q", envVar, os.Getenv(envVar), got, want)
		}
		return
	}
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	auto := chooseImpl("").name
	for env, want := range map[string]string{"purego": "purego", "": auto, "avx2": chooseImpl("avx2").name} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEnvOverride$", "-test.count=1")
		cmd.Env = append(os.Environ(), envVar+"="+env, "GEMM_WANT_IMPL="+want)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s=%q: %v\n%s", envVar, env, err, out)
		}
	}
	if got := chooseImpl("no-such-impl").name; got != auto {
		t.Errorf("unknown name chose %q", got)
	}
}

// TestConcurrentCalls runs products from several goroutines at once (the
// pools and the helper goroutines are shared) and checks each against the
// same product computed alone.
func TestConcurrentCalls(t *testing.T) {
	withThreads(2, func() {
		cases := []gemmCase{
			{m: 128, n: 300, k: 100, alpha: 1, seed: 1},
			{tA: true, m: 300, n: 128, k: 64, alpha: 1, beta: 0.5, seed: 2},
			{tB: true, m: 577, n: 6, k: 400, alpha: 2, seed: 3},
			{m: 1, n: 300, k: 784, alpha: 1, seed: 4},
		}
		want := make([][]float32, len(cases))
		for i, tc := range cases {
			want[i] = runCase(tc)
		}
		errs := make(chan string, 64)
		done := make(chan struct{})
		for g := 0; g < 8; g++ {
			go func() {
				defer func() { done <- struct{}{} }()
				for r := 0; r < 5; r++ {
					i := (g + r) % len(cases)
					got := runCase(cases[i])
					for e := range got {
						if !sameBits(got[e], want[i][e]) {
							errs <- fmt.Sprintf("goroutine %d, %v: element %d differs", g, cases[i], e)
							return
						}
					}
				}
			}()
		}
		for range 8 {
			<-done
		}
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	})
}

// TestSgemmSerialBitIdentical checks that SgemmSerial gives Sgemm's bits, at
// one thread and at two (where Sgemm splits these shapes), on conv-like
// shapes with ragged edges.
func TestSgemmSerialBitIdentical(t *testing.T) {
	for _, name := range impls() {
		t.Run(name, func(t *testing.T) {
			withImpl(t, name, func() {
				for _, s := range [][3]int{{16, 784, 144}, {576, 64, 196}, {131, 67, 521}, {1, 40, 9}, {40, 1, 9}} {
					for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
						tc := gemmCase{tA: tr[0], tB: tr[1], m: s[0], n: s[1], k: s[2], padA: 1, padC: 3, alpha: 0.75, beta: 0.5, seed: 13}
						a, lda, b, ldb, c, ldc := tc.operands()
						SgemmSerial(tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
						for _, threads := range []int{1, 2} {
							var want []float32
							withThreads(threads, func() { want = runCase(tc) })
							for i := range want {
								if !sameBits(c[i], want[i]) {
									t.Fatalf("%v: element %d: SgemmSerial %v, Sgemm at %d threads %v", tc, i, c[i], threads, want[i])
								}
							}
						}
					}
				}
			})
		})
	}
}
