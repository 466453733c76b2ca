package sparse

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
)

func impls() []string {
	names := []string{"purego"}
	if im := asmImpl(); im != nil {
		names = append(names, im.name)
	}
	return names
}

func withImpl(t testing.TB, name string, f func()) {
	t.Helper()
	prev := useImpl(name)
	defer useImpl(prev)
	if got := Impl(); got != name {
		t.Fatalf("useImpl(%q) gave %q", name, got)
	}
	f()
}

// spCase is one product: W out×in at the given density (some rows forced
// to zero with zeroRows), a batch of x rows, padded rows, an optional bias.
type spCase struct {
	out, in, batch int
	density        float64
	zeroRows       bool
	int8v          bool
	bias           bool
	padX, padY     int
	seed           uint64
}

func (c spCase) String() string {
	return fmt.Sprintf("%dx%d_b%d_d%g_z%v_i8%v_bias%v_pad%d.%d", c.out, c.in, c.batch, c.density, c.zeroRows, c.int8v, c.bias, c.padX, c.padY)
}

type operands struct {
	m        *Matrix
	dense    []float64 // W as the kernels see it (scale·q for int8)
	x, bias  []float32
	ldx, ldy int
}

func (c spCase) operands() operands {
	rng := rand.New(rand.NewPCG(c.seed, 3))
	o := operands{ldx: c.in + c.padX, ldy: c.out + c.padY}
	w := make([]float32, c.out*c.in)
	q := make([]int8, c.out*c.in)
	scale := make([]float32, c.out)
	o.dense = make([]float64, c.out*c.in)
	for r := 0; r < c.out; r++ {
		scale[r] = float32(0.001 + rng.Float64()*0.02)
		if c.zeroRows && r%3 == 1 {
			continue
		}
		for j := 0; j < c.in; j++ {
			if rng.Float64() >= c.density {
				continue
			}
			i := r*c.in + j
			if c.int8v {
				for q[i] == 0 {
					q[i] = int8(rng.IntN(256) - 128)
				}
				o.dense[i] = float64(scale[r]) * float64(q[i])
			} else {
				for w[i] == 0 {
					w[i] = float32(rng.NormFloat64())
				}
				o.dense[i] = float64(w[i])
			}
		}
	}
	if c.int8v {
		o.m = NewInt8(q, scale, c.out, c.in)
	} else {
		o.m = New(w, c.out, c.in)
	}
	o.x = make([]float32, max(0, c.batch*o.ldx))
	for i := range o.x {
		o.x[i] = float32(rng.NormFloat64())
	}
	if c.bias {
		o.bias = make([]float32, c.out)
		for i := range o.bias {
			o.bias[i] = float32(rng.NormFloat64())
		}
	}
	return o
}

// run computes y with the active implementation; y's padding holds NaN,
// which must survive.
func (o operands) run(c spCase) []float32 {
	y := make([]float32, max(0, c.batch*o.ldy))
	for i := range y {
		y[i] = float32(math.NaN())
	}
	o.m.Mul(c.batch, o.x, o.ldx, o.bias, y, o.ldy)
	return y
}

// check compares y with the dense product in float64, within float32
// rounding of the sum of |products|, and the padding of y.
func check(t *testing.T, c spCase, o operands, y []float32) {
	t.Helper()
	for b := 0; b < c.batch; b++ {
		for r := 0; r < o.ldy; r++ {
			got := y[b*o.ldy+r]
			if r >= c.out {
				if !math.IsNaN(float64(got)) {
					t.Fatalf("%v (%s): padding y[%d][%d] written", c, Impl(), b, r)
				}
				continue
			}
			var want, mag float64
			for j := 0; j < c.in; j++ {
				p := o.dense[r*c.in+j] * float64(o.x[b*o.ldx+j])
				want += p
				mag += math.Abs(p)
			}
			if o.bias != nil {
				want += float64(o.bias[r])
				mag += math.Abs(float64(o.bias[r]))
			}
			if d := math.Abs(float64(got) - want); d > 1e-6*mag+1e-30 || math.IsNaN(float64(got)) {
				t.Fatalf("%v (%s): y[%d][%d] = %v, want %v (|products| %v)", c, Impl(), b, r, got, want, mag)
			}
		}
	}
}

var sizes = []int{1, 2, 15, 16, 17, 31, 32, 33, 47, 65, 100}

func cases() []spCase {
	rng := rand.New(rand.NewPCG(1, 1))
	var cs []spCase
	for _, out := range sizes {
		for _, in := range sizes {
			cs = append(cs, spCase{
				out: out, in: in, batch: 1 + rng.IntN(9),
				density:  []float64{0.02, 0.08, 0.3, 1}[rng.IntN(4)],
				zeroRows: rng.IntN(3) == 0, int8v: rng.IntN(2) == 0, bias: rng.IntN(2) == 0,
				padX: rng.IntN(3), padY: rng.IntN(3), seed: rng.Uint64(),
			})
		}
	}
	for _, d := range []float64{0, 0.01, 0.08, 0.5, 1} {
		for _, int8v := range []bool{false, true} {
			cs = append(cs, spCase{out: 300, in: 784, batch: 6, density: d, int8v: int8v, bias: true, seed: 7})
			cs = append(cs, spCase{out: 10, in: 100, batch: 5, density: d, int8v: int8v, seed: 8})
		}
	}
	return cs
}

func TestMulAgainstDense(t *testing.T) {
	for _, name := range impls() {
		t.Run(name, func(t *testing.T) {
			withImpl(t, name, func() {
				for _, c := range cases() {
					o := c.operands()
					check(t, c, o, o.run(c))
				}
			})
		})
	}
}

// TestImplsAndBatchesAgree: the assembly and Go give the same bits, and a
// row's result does not depend on the batch it is computed in.
func TestImplsAndBatchesAgree(t *testing.T) {
	for _, c := range cases() {
		o := c.operands()
		var ref []float32
		for _, name := range impls() {
			withImpl(t, name, func() {
				y := o.run(c)
				if ref == nil {
					ref = y
				}
				for i := range y {
					if math.Float32bits(y[i]) != math.Float32bits(ref[i]) {
						t.Fatalf("%v: %s gives y[%d] = %v, %s %v", c, name, i, y[i], impls()[0], ref[i])
					}
				}
				for b := 0; b < c.batch; b++ {
					yb := make([]float32, c.out)
					o.m.MulVec(o.x[b*o.ldx:b*o.ldx+c.in], o.bias, yb)
					for r := range yb {
						if math.Float32bits(yb[r]) != math.Float32bits(ref[b*o.ldy+r]) {
							t.Fatalf("%v (%s): row %d alone gives y[%d] = %v, in the batch %v", c, name, b, r, yb[r], ref[b*o.ldy+r])
						}
					}
				}
			})
		}
	}
}

func TestEmpty(t *testing.T) {
	for _, name := range impls() {
		withImpl(t, name, func() {
			// No inputs: y = bias, or zeros.
			m := New(nil, 3, 0)
			y := []float32{9, 9, 9}
			m.MulVec(nil, []float32{1, 2, 3}, y)
			if y[0] != 1 || y[1] != 2 || y[2] != 3 {
				t.Errorf("%s: 3×0 with bias: %v", name, y)
			}
			m.MulVec(nil, nil, y)
			if y[0] != 0 || y[1] != 0 || y[2] != 0 {
				t.Errorf("%s: 3×0: %v", name, y)
			}
			// No outputs.
			New(nil, 0, 4).MulVec(make([]float32, 4), nil, nil)
			// All zeros: nothing stored, y = bias.
			m = New(make([]float32, 40), 5, 8)
			if m.NNZ() != 0 || m.Density() != 0 {
				t.Errorf("%s: zero matrix has %d nonzeros", name, m.NNZ())
			}
			y = make([]float32, 5)
			m.MulVec(make([]float32, 8), []float32{1, 2, 3, 4, 5}, y)
			for i, v := range y {
				if v != float32(i+1) {
					t.Errorf("%s: zero matrix: y = %v", name, y)
					break
				}
			}
			m.Mul(0, nil, 8, nil, nil, 5)
		})
	}
}

func TestCounts(t *testing.T) {
	w := []float32{0, 1, 0, 2, 0, 0, 3, 0}
	m := New(w, 2, 4)
	if m.NNZ() != 3 || m.Out() != 2 || m.In() != 4 || m.Density() != 3.0/8 {
		t.Errorf("NNZ %d Out %d In %d Density %v", m.NNZ(), m.Out(), m.In(), m.Density())
	}
	if m.Bytes() <= 0 {
		t.Errorf("Bytes %d", m.Bytes())
	}
}

func TestPanics(t *testing.T) {
	m := New(make([]float32, 6), 2, 3)
	cases := []struct {
		name string
		f    func()
	}{
		{"short w", func() { New(make([]float32, 5), 2, 3) }},
		{"scales", func() { NewInt8(make([]int8, 6), []float32{1}, 2, 3) }},
		{"negative", func() { New(nil, -1, 3) }},
		{"short x", func() { m.Mul(2, make([]float32, 5), 3, nil, make([]float32, 4), 2) }},
		{"short y", func() { m.Mul(2, make([]float32, 6), 3, nil, make([]float32, 3), 2) }},
		{"ldx", func() { m.Mul(1, make([]float32, 6), 2, nil, make([]float32, 2), 2) }},
		{"bias", func() { m.Mul(1, make([]float32, 3), 3, []float32{1}, make([]float32, 2), 2) }},
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

func TestMulNoAllocs(t *testing.T) {
	c := spCase{out: 100, in: 300, batch: 7, density: 0.1, bias: true, seed: 1}
	o := c.operands()
	y := make([]float32, c.batch*o.ldy)
	for _, name := range impls() {
		withImpl(t, name, func() {
			f := func() { o.m.Mul(c.batch, o.x, o.ldx, o.bias, y, o.ldy) }
			if n := testing.AllocsPerRun(10, f); n != 0 {
				t.Errorf("%s: %v allocs per call", name, n)
			}
		})
	}
}

func FuzzMul(f *testing.F) {
	f.Add(uint8(17), uint8(33), uint8(3), uint8(20), uint8(0), uint64(1))
	f.Add(uint8(1), uint8(1), uint8(1), uint8(255), uint8(7), uint64(2))
	f.Fuzz(func(t *testing.T, out, in, batch, density, flags uint8, seed uint64) {
		c := spCase{
			out: int(out), in: int(in), batch: int(batch % 10), density: float64(density) / 255,
			zeroRows: flags&1 != 0, int8v: flags&2 != 0, bias: flags&4 != 0,
			padX: int(flags >> 3 & 3), padY: int(flags >> 5 & 3), seed: seed,
		}
		o := c.operands()
		var ref []float32
		for _, name := range impls() {
			withImpl(t, name, func() {
				y := o.run(c)
				check(t, c, o, y)
				if ref == nil {
					ref = y
				}
				for i := range y {
					if math.Float32bits(y[i]) != math.Float32bits(ref[i]) {
						t.Fatalf("%v: %s differs at %d", c, name, i)
					}
				}
			})
		}
	})
}

func TestEnvOverride(t *testing.T) {
	if want := os.Getenv("SPARSE_WANT_IMPL"); want != "" {
		if got := Impl(); got != want {
			t.Fatalf("%s=%q SHRINK_GEMM=%q: Impl() = %q, want %q", envVar, os.Getenv(envVar), os.Getenv("SHRINK_GEMM"), got, want)
		}
		return
	}
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	type env struct{ sparse, gemm, want string }
	envs := []env{{"purego", "", "purego"}, {"", "purego", "purego"}}
	if im := asmImpl(); im != nil {
		envs = append(envs, env{im.name, "", im.name}, env{"", "", im.name})
	}
	for _, e := range envs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEnvOverride$", "-test.count=1")
		cmd.Env = append(os.Environ(), envVar+"="+e.sparse, "SHRINK_GEMM="+e.gemm, "SPARSE_WANT_IMPL="+e.want)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%+v: %v\n%s", e, err, out)
		}
	}
}
