package vec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The assembly and the Go loop give the same bits for every value, including
// the clamped tails of exp, both sides of tanh's 0.625 switch, and rows whose
// length is not a multiple of 8.
func TestLSTMCellAssemblyMatchesGo(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2")
	}
	wide := useAVX512
	defer func() { useAVX512 = wide }()
	r := rand.New(rand.NewPCG(3, 4))
	for _, hs := range []int{8, 13, 24, 40, 64, 128, 200} {
		for _, scale := range []float64{0.01, 0.5, 3, 40, 200} {
			z := make([]float32, 4*hs)
			cp := make([]float32, hs)
			for i := range z {
				z[i] = float32(r.NormFloat64() * scale)
			}
			for i := range cp {
				cp[i] = float32(r.NormFloat64() * scale)
			}
			// values at the switches
			z[0], z[1], z[2*hs], z[2*hs+1], z[3*hs] = 0.625, -0.625, 0.625, -0.6249999, 0
			useAVX2, useAVX512 = false, false
			want := cellOutputs(z, cp, hs)
			useAVX2 = true
			paths := map[string][][]float32{"avx2": cellOutputs(z, cp, hs)}
			if wide {
				useAVX512 = true
				paths["avx512"] = cellOutputs(z, cp, hs)
			}
			for name, got := range paths {
				for i := range want {
					if !slices.Equal(bits(got[i]), bits(want[i])) {
						t.Fatalf("hs %d, scale %g: output %d differs between %s and Go", hs, scale, i, name)
					}
				}
			}
		}
	}
}

func cellOutputs(z0, cp []float32, hs int) [][]float32 {
	z := slices.Clone(z0)
	c, tc, h := make([]float32, hs), make([]float32, hs), make([]float32, hs)
	LSTMCell(z, cp, c, tc, h)
	return [][]float32{z, c, tc, h}
}

func bits(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = math.Float32bits(x)
	}
	return out
}

// Exp, Sigmoid and Tanh against float64 math: a few ulp of the float32
// result (tanh: or 2^-24 absolute, where 1 - 2/(e^2|x|+1) cancels).
func TestGateFunctionsAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var xs []float32
	for i := 0; i < 200000; i++ {
		xs = append(xs, float32(r.NormFloat64()*math.Pow(10, r.Float64()*4-3)))
	}
	xs = append(xs, 0, -0, 0.625, -0.625, 87, -87, 88, 20, -20)
	for _, x := range xs {
		if x >= -87 && x <= 88 {
			want := math.Exp(float64(x))
			if e := math.Abs(float64(Exp(x))-want) / want; e > 3e-7 {
				t.Fatalf("Exp(%g) = %g, want %g (relative error %g)", x, Exp(x), want, e)
			}
		}
		want := 1 / (1 + math.Exp(-float64(x)))
		if e := math.Abs(float64(Sigmoid(x)) - want); e > 3e-7*want {
			t.Fatalf("Sigmoid(%g) = %g, want %g", x, Sigmoid(x), want)
		}
		want = math.Tanh(float64(x))
		if e := math.Abs(float64(Tanh(x)) - want); e > max(3e-7*math.Abs(want), 1.2e-7) {
			t.Fatalf("Tanh(%g) = %g, want %g", x, Tanh(x), want)
		}
	}
	if Tanh(1e-30) != 1e-30 || Tanh(-50) != -1 || Sigmoid(-200) != 0 && Sigmoid(-200) > 1e-37 {
		t.Errorf("tails: Tanh(1e-30) = %g, Tanh(-50) = %g, Sigmoid(-200) = %g", Tanh(1e-30), Tanh(-50), Sigmoid(-200))
	}
}

func BenchmarkLSTMCell(b *testing.B) {
	const hs = 128
	r := rand.New(rand.NewPCG(1, 2))
	z := make([]float32, 4*hs)
	for i := range z {
		z[i] = float32(r.NormFloat64())
	}
	cp, c, tc, h := make([]float32, hs), make([]float32, hs), make([]float32, hs), make([]float32, hs)
	work := slices.Clone(z)
	for _, impl := range []string{"avx512", "avx2", "go"} {
		b.Run(impl, func(b *testing.B) {
			prev, prevWide := useAVX2, useAVX512
			useAVX2 = useAVX2 && impl != "go"
			useAVX512 = useAVX512 && impl == "avx512"
			defer func() { useAVX2, useAVX512 = prev, prevWide }()
			b.SetBytes(4 * hs * 4)
			for i := 0; i < b.N; i++ {
				copy(work, z)
				LSTMCell(work, cp, c, tc, h)
			}
		})
	}
}

func TestMinMax(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 7, 8, 9, 16, 100, 1000} {
		for trial := 0; trial < 20; trial++ {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64() * 10)
			}
			lo, hi := MinMax(x)
			wlo, whi := slices.Min(x), slices.Max(x)
			if lo != wlo || hi != whi {
				t.Fatalf("n %d: MinMax = %g, %g, want %g, %g", n, lo, hi, wlo, whi)
			}
		}
	}
	if lo, hi := MinMax(nil); lo != 0 || hi != 0 {
		t.Errorf("empty: %g, %g", lo, hi)
	}
}

// LSTMCellGrad: the assembly paths and the Go loop give the same bits.
func TestLSTMCellGradAssemblyMatchesGo(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2")
	}
	wide := useAVX512
	defer func() { useAVX2, useAVX512 = true, wide }()
	r := rand.New(rand.NewPCG(11, 12))
	for _, hs := range []int{8, 13, 24, 40, 128} {
		gates := make([]float32, 4*hs)
		cp, tc, dy, dh, dc := make([]float32, hs), make([]float32, hs), make([]float32, hs), make([]float32, hs), make([]float32, hs)
		for i := range gates {
			gates[i] = float32(r.Float64())
		}
		for _, v := range [][]float32{cp, tc, dy, dh, dc} {
			for i := range v {
				v[i] = float32(r.NormFloat64())
			}
		}
		run := func(avx2, avx512 bool) [][]float32 {
			useAVX2, useAVX512 = avx2, avx512
			dz, dcOut := make([]float32, 4*hs), slices.Clone(dc)
			LSTMCellGrad(gates, cp, tc, dy, dh, dcOut, dz)
			return [][]float32{dz, dcOut}
		}
		want := run(false, false)
		paths := map[string][][]float32{"avx2": run(true, false)}
		if wide {
			paths["avx512"] = run(true, true)
		}
		for name, got := range paths {
			for i := range want {
				if !slices.Equal(bits(got[i]), bits(want[i])) {
					t.Fatalf("hs %d: output %d differs between %s and Go", hs, i, name)
				}
			}
		}
	}
}
