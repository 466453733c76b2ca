package qgemm

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
)

// impls returns the implementations this machine runs, so every test
// covers each assembly family and the Go fallback.
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

// mmCase is one product: the ld* pads are extra values per row, tight
// makes a end exactly after its last row's k values (no slack for the
// kernels' 4-byte groups), and extreme fills A with its largest code and
// B with -128 and 127, the largest products.
type mmCase struct {
	m, n, k    int
	r          Range
	padA, padC int
	tight      bool
	extreme    bool
	seed       uint64
}

func (tc mmCase) String() string {
	return fmt.Sprintf("%dx%dx%d_r%d_pad%d.%d_tight%v_ext%v", tc.m, tc.n, tc.k, tc.r, tc.padA, tc.padC, tc.tight, tc.extreme)
}

// operands builds A (with random bytes, above the range too, in the row
// padding, which must not matter), B and a C full of a sentinel.
func (tc mmCase) operands() (a []uint8, lda int, b []int8, c []int32, ldc int) {
	rng := rand.New(rand.NewPCG(tc.seed, 11))
	lda, ldc = tc.k+tc.padA, tc.n+tc.padC
	a = make([]uint8, tc.m*lda)
	if tc.tight && tc.m > 0 {
		a = a[:(tc.m-1)*lda+tc.k]
	}
	for i := range a {
		if i%lda >= tc.k {
			a[i] = uint8(rng.UintN(256))
			continue
		}
		switch {
		case tc.extreme:
			a[i] = uint8(tc.r)
		default:
			a[i] = uint8(rng.UintN(uint(tc.r) + 1))
		}
	}
	b = make([]int8, tc.n*tc.k)
	for i := range b {
		switch {
		case tc.extreme && i%3 == 2:
			b[i] = 127
		case tc.extreme:
			b[i] = -128
		default:
			b[i] = int8(rng.IntN(256) - 128)
		}
	}
	c = make([]int32, max(0, (tc.m-1)*ldc+tc.n))
	for i := range c {
		c[i] = -0x5a5a5a5a
	}
	return a, lda, b, c, ldc
}

// refMatMul is the plain definition, summed in int64.
func refMatMul(m, n, k int, a []uint8, lda int, b []int8) []int64 {
	want := make([]int64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s int64
			for q := 0; q < k; q++ {
				s += int64(a[i*lda+q]) * int64(b[j*k+q])
			}
			want[i*n+j] = s
		}
	}
	return want
}

// check runs the case with the active implementation and compares every
// element, and that padding columns of C were left alone.
func check(t *testing.T, tc mmCase) {
	t.Helper()
	a, lda, b, c, ldc := tc.operands()
	p := Pack(b, tc.n, tc.k)
	MatMul(tc.m, a, lda, tc.r, p, c, ldc)
	want := refMatMul(tc.m, tc.n, tc.k, a, lda, b)
	for i := 0; i < tc.m; i++ {
		for j := 0; j < ldc && i*ldc+j < len(c); j++ {
			got := c[i*ldc+j]
			if j >= tc.n {
				if got != -0x5a5a5a5a {
					t.Fatalf("%v (%s): padding C[%d][%d] written: %d", tc, Impl(), i, j, got)
				}
				continue
			}
			if w := want[i*tc.n+j]; int64(got) != w {
				t.Fatalf("%v (%s): C[%d][%d] = %d, want %d", tc, Impl(), i, j, got, w)
			}
		}
	}
}

// edgeSizes are sizes around every tile and vector width the kernels use.
var edgeSizes = []int{1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 16, 17, 23, 24, 25, 31, 33, 47, 49, 63, 64, 65, 121, 130}

func TestMatMulShapes(t *testing.T) {
	var cases []mmCase
	rng := rand.New(rand.NewPCG(3, 4))
	kinds := []int{1, 2, 3, 4, 5, 7, 8, 13, 25, 28, 64, 100, 150}
	for _, m := range edgeSizes {
		for _, n := range edgeSizes {
			k := kinds[rng.IntN(len(kinds))]
			r := []Range{Full, Reduced}[rng.IntN(2)]
			cases = append(cases, mmCase{m: m, n: n, k: k, r: r, padA: rng.IntN(3) * 3, padC: rng.IntN(2) * 5, tight: rng.IntN(2) == 0, seed: rng.Uint64()})
		}
	}
	// Deep products: several k blocks, accumulated in C.
	for _, k := range []int{1023, 1024, 1025, 2051, 4100} {
		for _, r := range []Range{Full, Reduced} {
			cases = append(cases, mmCase{m: 13, n: 70, k: k, r: r, tight: true, seed: uint64(k)})
			cases = append(cases, mmCase{m: 1, n: 33, k: k, r: r, tight: true, seed: uint64(k) + 1})
		}
	}
	// The benchmark shapes.
	for _, s := range benchShapes {
		cases = append(cases, mmCase{m: s.m, n: s.n, k: s.k, r: Full, seed: 9}, mmCase{m: s.m, n: s.n, k: s.k, r: Reduced, seed: 10})
	}
	for _, name := range impls() {
		t.Run(name, func(t *testing.T) {
			withImpl(t, name, func() {
				for _, tc := range cases {
					if name == "purego" && tc.m*tc.n*tc.k > 1<<24 {
						continue // minutes in Go; the shapes are covered smaller
					}
					check(t, tc)
				}
			})
		})
	}
}

// TestMatMulExtremes: the largest products, 255·-128 and 255·127 summed
// over long rows, where a saturating int16 step would show.
func TestMatMulExtremes(t *testing.T) {
	for _, name := range impls() {
		t.Run(name, func(t *testing.T) {
			withImpl(t, name, func() {
				for _, r := range []Range{Full, Reduced} {
					for _, s := range [][3]int{{1, 64, 784}, {7, 19, 3}, {30, 40, 1027}, {12, 32, MaxK}} {
						if name == "purego" && s[2] == MaxK {
							s[0], s[1] = 1, 2
						}
						check(t, mmCase{m: s[0], n: s[1], k: s[2], r: r, extreme: true, seed: 1})
					}
				}
			})
		})
	}
}

func TestMatMulEmpty(t *testing.T) {
	for _, name := range impls() {
		withImpl(t, name, func() {
			p := Pack(nil, 0, 5)
			MatMul(3, make([]uint8, 15), 5, Full, p, nil, 1) // n = 0: nothing to do
			p = Pack(nil, 4, 0)
			c := []int32{1, 2, 3, 4, 5, 6, 7, 8}
			MatMul(2, nil, 1, Full, p, c, 4) // k = 0: zeros
			for i, v := range c {
				if v != 0 {
					t.Fatalf("%s: k = 0 left C[%d] = %d", name, i, v)
				}
			}
			MatMul(0, nil, 3, Full, Pack(make([]int8, 6), 2, 3), nil, 2)
		})
	}
}

func TestPackRowSums(t *testing.T) {
	b := []int8{1, -2, 3, 127, -128, 0, 5, 5, 5}
	p := Pack(b, 3, 3)
	want := []int32{2, -1, 15}
	for j, w := range want {
		if p.RowSums()[j] != w {
			t.Errorf("row %d: sum %d, want %d", j, p.RowSums()[j], w)
		}
	}
	if p.N() != 3 || p.K() != 3 {
		t.Errorf("N, K = %d, %d", p.N(), p.K())
	}
}

func TestPanics(t *testing.T) {
	p := Pack(make([]int8, 12), 3, 4)
	cases := []struct {
		name string
		f    func()
	}{
		{"short b", func() { Pack(make([]int8, 5), 2, 3) }},
		{"k too large", func() { Pack(nil, 0, MaxK+1) }},
		{"negative m", func() { MatMul(-1, nil, 4, Full, p, nil, 3) }},
		{"bad range", func() { MatMul(1, make([]uint8, 4), 4, 200, p, make([]int32, 3), 3) }},
		{"small lda", func() { MatMul(1, make([]uint8, 4), 3, Full, p, make([]int32, 3), 3) }},
		{"small ldc", func() { MatMul(1, make([]uint8, 4), 4, Full, p, make([]int32, 3), 2) }},
		{"short a", func() { MatMul(2, make([]uint8, 7), 4, Full, p, make([]int32, 6), 3) }},
		{"short c", func() { MatMul(2, make([]uint8, 8), 4, Full, p, make([]int32, 5), 3) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			c.f()
		})
	}
}

func TestMatMulNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	for _, name := range impls() {
		withImpl(t, name, func() {
			for _, r := range []Range{Full, Reduced} {
				tc := mmCase{m: 37, n: 70, k: 150, r: r, tight: true, seed: 1}
				a, lda, b, c, ldc := tc.operands()
				p := Pack(b, tc.n, tc.k)
				f := func() { MatMul(tc.m, a, lda, tc.r, p, c, ldc) }
				f()
				if n := testing.AllocsPerRun(10, f); n != 0 {
					t.Errorf("%s, range %d: %v allocs per call", name, r, n)
				}
			}
		})
	}
}

// FuzzMatMul checks random shapes, paddings and ranges on every path.
func FuzzMatMul(f *testing.F) {
	f.Add(uint8(7), uint8(13), uint8(5), uint8(0), uint64(1))
	f.Add(uint8(1), uint8(1), uint8(1), uint8(3), uint64(2))
	f.Add(uint8(65), uint8(33), uint8(200), uint8(0x1f), uint64(3))
	f.Fuzz(func(t *testing.T, m, n, k, flags uint8, seed uint64) {
		tc := mmCase{
			m: int(m), n: int(n), k: int(k),
			r:    []Range{Full, Reduced}[flags&1],
			padA: int(flags >> 1 & 3), padC: int(flags >> 3 & 3),
			tight: flags&32 != 0, extreme: flags&64 != 0, seed: seed,
		}
		if tc.k == 0 || tc.n == 0 || tc.m == 0 {
			return
		}
		for _, name := range impls() {
			withImpl(t, name, func() { check(t, tc) })
		}
	})
}

// TestEnvOverride runs the test binary again with SHRINK_QGEMM (and
// SHRINK_GEMM=purego) set and checks the choice it made at start-up.
func TestEnvOverride(t *testing.T) {
	if want := os.Getenv("QGEMM_WANT_IMPL"); want != "" {
		if got := Impl(); got != want {
			t.Fatalf("%s=%q SHRINK_GEMM=%q: Impl() = %q, want %q", envVar, os.Getenv(envVar), os.Getenv("SHRINK_GEMM"), got, want)
		}
		return
	}
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	type env struct{ qgemm, gemm, want string }
	envs := []env{{"purego", "", "purego"}, {"", "purego", "purego"}}
	for _, im := range asmImpls() {
		envs = append(envs, env{im.name, "", im.name}, env{im.name, "purego", im.name})
	}
	for _, e := range envs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEnvOverride$", "-test.count=1")
		cmd.Env = append(os.Environ(), envVar+"="+e.qgemm, "SHRINK_GEMM="+e.gemm, "QGEMM_WANT_IMPL="+e.want)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%+v: %v\n%s", e, err, out)
		}
	}
}
