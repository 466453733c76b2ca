package vec

import "math"

//go:generate go run asm/lstmgen.go -out lstm_amd64.s -stubs lstm_stubs_amd64.go -pkg vec

// An LSTM step's gates, in float32: sigmoid and tanh from one exp, Cephes'
// expf and tanhf (S. L. Moshier) with the ranges clamped so 2^n stays a
// normal float. Relative error of exp is about 2 ulp; tanh's about 2 ulp
// below |x| = 0.625 (a polynomial) and 2^-24 absolute above (1 - 2/(e^2|x| +
// 1)), which is what an LSTM's float32 state can hold. The AVX2 kernel
// (asm/lstmgen.go) performs the same operations in the same order, without
// fused multiply-adds (the AVX-512 one on 16 lanes), so every path gives
// the same bits; every product below
// is rounded on its own (the float32 conversions) so a compiler that fuses
// x*y + z into an FMA (GOAMD64=v3) keeps to it too.

const (
	expLo float32 = -87 // exp(-87) is normal: 2^n below needs n >= -126
	expHi float32 = 88  // exp(88) < MaxFloat32
	log2e float32 = 1.44269504088896341
	expC1 float32 = 0.693359375 // ln 2 = C1 - C2, C1 exact in 9 bits
	expC2 float32 = -2.12194440e-4
	expP0 float32 = 1.9875691500e-4
	expP1 float32 = 1.3981999507e-3
	expP2 float32 = 8.3334519073e-3
	expP3 float32 = 4.1665795894e-2
	expP4 float32 = 1.6666665459e-1
	expP5 float32 = 5.0000001201e-1

	tanhSmall float32 = 0.625
	tanhQ0    float32 = -5.70498872745e-3
	tanhQ1    float32 = 2.06390887954e-2
	tanhQ2    float32 = -5.37397155531e-2
	tanhQ3    float32 = 1.33314422036e-1
	tanhQ4    float32 = -3.33332819422e-1
)

// Exp is e^x for x in [-87, 88] (clamped outside).
func Exp(x float32) float32 {
	if x < expLo {
		x = expLo
	}
	if x > expHi {
		x = expHi
	}
	n := float32(math.RoundToEven(float64(float32(x * log2e))))
	r := x - float32(n*expC1)
	r -= float32(n * expC2)
	zz := float32(r * r)
	y := float32(expP0*r) + expP1
	y = float32(y*r) + expP2
	y = float32(y*r) + expP3
	y = float32(y*r) + expP4
	y = float32(y*r) + expP5
	y = float32(y*zz) + r
	y++
	return y * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// Sigmoid is 1 / (1 + e^-x).
func Sigmoid(x float32) float32 { return 1 / (1 + Exp(-x)) }

// Tanh is tanh x: a polynomial in x² below |x| = 0.625, 1 - 2/(e^2|x| + 1)
// with x's sign above.
func Tanh(x float32) float32 {
	a := math.Float32frombits(math.Float32bits(x) &^ (1 << 31))
	if a < tanhSmall {
		zz := float32(x * x)
		p := float32(tanhQ0*zz) + tanhQ1
		p = float32(p*zz) + tanhQ2
		p = float32(p*zz) + tanhQ3
		p = float32(p*zz) + tanhQ4
		p = float32(p * zz)
		return float32(p*x) + x
	}
	r := 1 - 2/(Exp(a+a)+1)
	return math.Float32frombits(math.Float32bits(r) | math.Float32bits(x)&(1<<31))
}

// LSTMCell is one LSTM step for one sample: z holds the gates'
// pre-activations i, f, g, o (H values each), replaced by their activations
// sigmoid, sigmoid, tanh, sigmoid; then c = f·cprev + i·g (cprev holds zeros
// at the first step), tc = tanh(c) and h = o·tc, each H values. c may be
// cprev.
func LSTMCell(z, cprev, c, tc, h []float32) {
	hs := len(c)
	z, cprev, tc, h = z[:4*hs], cprev[:hs], tc[:hs], h[:hs]
	done := 0
	if useAVX512 && hs >= 16 {
		done = hs &^ 15
		lstmCellAVX512(done, hs, &z[0], &cprev[0], &c[0], &tc[0], &h[0], &cellConsts[0])
	}
	if n := (hs - done) &^ 7; useAVX2 && n > 0 {
		// The kernel reads the gates hs apart from the pointers it gets.
		lstmCellAVX2(n, hs, &z[done], &cprev[done], &c[done], &tc[done], &h[done], &cellConsts[0])
		done += n
	}
	for j := done; j < hs; j++ {
		i := Sigmoid(z[j])
		f := Sigmoid(z[hs+j])
		g := Tanh(z[2*hs+j])
		o := Sigmoid(z[3*hs+j])
		z[j], z[hs+j], z[2*hs+j], z[3*hs+j] = i, f, g, o
		cj := float32(f*cprev[j]) + float32(i*g)
		c[j] = cj
		t := Tanh(cj)
		tc[j] = t
		h[j] = o * t
	}
}

// LSTMCellGrad is one step's backward pass for one sample: gates are i, f,
// g, o after activation and tc = tanh(c), from LSTMCell; cprev the cell state
// before the step (zeros at the first); dy the gradient of the step's
// output. dh and dc carry the gradients of the hidden and cell states from
// the step after; dc receives the cell state's for the step before. dz
// receives the gradients of the gates' pre-activations (4H values).
func LSTMCellGrad(gates, cprev, tc, dy, dh, dc, dz []float32) {
	hs := len(tc)
	gates, cprev, dy, dh, dc, dz = gates[:4*hs], cprev[:hs], dy[:hs], dh[:hs], dc[:hs], dz[:4*hs]
	done := 0
	if useAVX512 && hs >= 16 {
		done = hs &^ 15
		lstmCellGradAVX512(done, hs, &gates[0], &cprev[0], &tc[0], &dy[0], &dh[0], &dc[0], &dz[0], &cellConsts[0])
	}
	if n := (hs - done) &^ 7; useAVX2 && n > 0 {
		lstmCellGradAVX2(n, hs, &gates[done], &cprev[done], &tc[done], &dy[done], &dh[done], &dc[done], &dz[done], &cellConsts[0])
		done += n
	}
	for j := done; j < hs; j++ {
		i, f, g, o, t := gates[j], gates[hs+j], gates[2*hs+j], gates[3*hs+j], tc[j]
		dhj := dy[j] + dh[j]
		dcj := dc[j] + float32(float32(dhj*o)*(1-float32(t*t)))
		dz[3*hs+j] = float32(float32(dhj*t)*o) * (1 - o)
		dz[j] = float32(float32(dcj*g)*i) * (1 - i)
		dz[hs+j] = float32(float32(dcj*cprev[j])*f) * (1 - f)
		dz[2*hs+j] = float32(dcj*i) * (1 - float32(g*g))
		dc[j] = dcj * f
	}
}

// cellConsts are the kernels' constants, each repeated over 16 lanes, in the
// order asm/lstmgen.go reads them.
var cellConsts = func() []float32 {
	one := []float32{
		expLo, expHi, log2e, expC1, expC2, expP0, expP1, expP2, expP3, expP4, expP5,
		1, 2, tanhSmall, tanhQ0, tanhQ1, tanhQ2, tanhQ3, tanhQ4,
		math.Float32frombits(1<<31 - 1), // |x| mask
		math.Float32frombits(1 << 31),   // sign mask
		math.Float32frombits(127),       // exponent bias, as an int32
	}
	out := make([]float32, 0, 16*len(one))
	for _, c := range one {
		for range 16 {
			out = append(out, c)
		}
	}
	return out
}()

// MinMax returns the least and greatest of x (0, 0 for an empty x). NaN
// values are skipped where the assembly runs and may be taken by the Go loop;
// callers measure activations, which hold none.
func MinMax(x []float32) (lo, hi float32) {
	if len(x) == 0 {
		return 0, 0
	}
	lo, hi = x[0], x[0]
	done := 0
	if useAVX2 && len(x) >= 8 {
		done = len(x) &^ 7
		var out [2]float32
		minMaxAVX2(done, &x[0], &out)
		lo, hi = out[0], out[1]
	}
	for _, v := range x[done:] {
		lo = min(lo, v)
		hi = max(hi, v)
	}
	return lo, hi
}
