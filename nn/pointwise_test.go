package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestActivationKernels checks each activation's float32 kernels against its
// formula and derivative in float64, over both tails, the kinks and values
// where exp overflows. The bound is absolute, scaled by max(1, |x|): the
// formulas PyTorch uses cancel in the tails (1 + erf(x/√2) for x ≪ 0), so a
// relative bound would hold PyTorch itself to more than float32 gives.
func TestActivationKernels(t *testing.T) {
	sigmoid := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	phi := func(x float64) float64 { return math.Exp(-x*x/2) / math.Sqrt(2*math.Pi) }
	Phi := func(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }
	beta, kappa := math.Sqrt(2/math.Pi), 0.044715
	for _, tc := range []struct {
		f        *pointwise
		fn, grad func(x float64) float64
	}{
		{relu6Fn, func(x float64) float64 { return math.Min(math.Max(x, 0), 6) },
			func(x float64) float64 {
				if x > 0 && x < 6 {
					return 1
				}
				return 0
			}},
		{sigmoidFn, sigmoid, func(x float64) float64 { s := sigmoid(x); return s * (1 - s) }},
		{tanhFn, math.Tanh, func(x float64) float64 { th := math.Tanh(x); return 1 - th*th }},
		{siluFn, func(x float64) float64 { return x * sigmoid(x) },
			func(x float64) float64 { s := sigmoid(x); return s * (1 + x*(1-s)) }},
		{geluFn, func(x float64) float64 { return x * Phi(x) }, func(x float64) float64 { return Phi(x) + x*phi(x) }},
		{geluTanhFn, func(x float64) float64 { return 0.5 * x * (1 + math.Tanh(beta*(x+kappa*x*x*x))) },
			func(x float64) float64 {
				th := math.Tanh(beta * (x + kappa*x*x*x))
				return 0.5*(1+th) + 0.5*x*(1-th*th)*beta*(1+3*kappa*x*x)
			}},
	} {
		t.Run(tc.f.name, func(t *testing.T) {
			var x []float32
			for v := -30.0; v <= 30; v += 0.01 {
				x = append(x, float32(v))
			}
			x = append(x, 0, float32(math.Copysign(0, -1)), 6, 1e-30, -1e-30, 100, -100, 1e6, -1e6)
			rng := rand.New(rand.NewPCG(5, 5))
			dy := make([]float32, len(x))
			for i := range dy {
				dy[i] = float32(4*rng.Float64() - 2)
			}
			y, dx := make([]float32, len(x)), make([]float32, len(x))
			tc.f.forward(x, y)
			tc.f.backward(x, y, dy, dx)
			for i, v := range x {
				xf, scale := float64(v), math.Max(1, math.Abs(float64(v)))
				if want := tc.fn(xf); math.Abs(float64(y[i])-want) > 1e-6*scale || math.IsNaN(float64(y[i])) {
					t.Errorf("f(%g) = %g, want %g", v, y[i], want)
				}
				if want := float64(dy[i]) * tc.grad(xf); math.Abs(float64(dx[i])-want) > 2e-6*scale*math.Abs(float64(dy[i])) || math.IsNaN(float64(dx[i])) {
					t.Errorf("dy·f'(%g) = %g, want %g (dy %g)", v, dx[i], want, dy[i])
				}
			}
		})
	}
}
