package vec

import "math"

//go:generate go run asm/bngen.go -out bn_amd64.s -stubs bn_stubs_amd64.go -pkg vec

// Batch norm's per-channel kernels. Each walks one channel of a [B, C, S]
// batch: `runs` runs of n floats, run r starting at element r*stride. The
// float64 sums keep 32 partial sums (float i of a run adds to sum i%32,
// runs in order) reduced by reduce32's fixed tree, which the AVX-512
// assembly (asm/bngen.go) follows lane for lane, so SHRINK_GEMM=purego and
// machines without AVX-512 get the same bits.

// span checks that x holds the runs and returns it cut to them.
func span(x []float32, runs, n, stride int) []float32 {
	if runs < 1 || n < 1 {
		return nil
	}
	return x[:(runs-1)*stride+n]
}

// BNSum is Σx over the runs, in float64.
func BNSum(x []float32, runs, n, stride int) float64 {
	if x = span(x, runs, n, stride); x == nil {
		return 0
	}
	if useBN512 {
		return bnSum512(&x[0], runs, n, stride)
	}
	return bnSumRef(x, runs, n, stride)
}

// BNSqDev is Σ(x - mean)² over the runs, in float64.
func BNSqDev(x []float32, runs, n, stride int, mean float64) float64 {
	if x = span(x, runs, n, stride); x == nil {
		return 0
	}
	if useBN512 {
		return bnSqDev512(&x[0], runs, n, stride, mean)
	}
	return bnSqDevRef(x, runs, n, stride, mean)
}

// BNDotDev is Σdy and Σdy·(x - mean) over the runs, in float64.
func BNDotDev(dy, x []float32, runs, n, stride int, mean float64) (sum, dot float64) {
	if dy = span(dy, runs, n, stride); dy == nil {
		return 0, 0
	}
	x = x[:len(dy)]
	if useBN512 {
		return bnDotDev512(&dy[0], &x[0], runs, n, stride, mean)
	}
	return bnDotDevRef(dy, x, runs, n, stride, mean)
}

// ScaleShift sets y = x·a + b (product rounded, then the sum) over the runs.
func ScaleShift(y, x []float32, runs, n, stride int, a, b float32) {
	if y = span(y, runs, n, stride); y == nil {
		return
	}
	x = x[:len(y)]
	if useBN512 {
		scaleShift512(&y[0], &x[0], runs, n, stride, a, b)
		return
	}
	scaleShiftRef(y, x, runs, n, stride, a, b)
}

// BNGradIn sets dx = ((dy - gm) - (x - mf)·k)·sf over the runs, each
// operation rounded to float32: batch norm's input gradient in training.
func BNGradIn(dx, dy, x []float32, runs, n, stride int, gm, mf, k, sf float32) {
	if dx = span(dx, runs, n, stride); dx == nil {
		return
	}
	dy, x = dy[:len(dx)], x[:len(dx)]
	if useBN512 {
		bnGradIn512(&dx[0], &dy[0], &x[0], runs, n, stride, gm, mf, k, sf)
		return
	}
	bnGradInRef(dx, dy, x, runs, n, stride, gm, mf, k, sf)
}

// ScaleShiftReLU sets y = max(x·a + b, 0) over the runs: ScaleShift then
// ReLU, in one pass (batch norm with its ReLU fused).
func ScaleShiftReLU(y, x []float32, runs, n, stride int, a, b float32) {
	if y = span(y, runs, n, stride); y == nil {
		return
	}
	x = x[:len(y)]
	if useBN512 {
		scaleShiftReLU512(&y[0], &x[0], runs, n, stride, a, b)
		return
	}
	scaleShiftReLURef(y, x, runs, n, stride, a, b)
}

// BNDotDevReLU is BNDotDev of the gradient through the fused ReLU whose
// output is y: dy where y's bits are non-zero, +0 elsewhere (ReLUGrad's).
func BNDotDevReLU(dy, y, x []float32, runs, n, stride int, mean float64) (sum, dot float64) {
	if dy = span(dy, runs, n, stride); dy == nil {
		return 0, 0
	}
	y, x = y[:len(dy)], x[:len(dy)]
	if useBN512 {
		return bnDotDevReLU512(&dy[0], &y[0], &x[0], runs, n, stride, mean)
	}
	return bnDotDevReLURef(dy, y, x, runs, n, stride, mean)
}

// BNGradInReLU is BNGradIn of the gradient through the fused ReLU whose
// output is y (see BNDotDevReLU).
func BNGradInReLU(dx, dy, y, x []float32, runs, n, stride int, gm, mf, k, sf float32) {
	if dx = span(dx, runs, n, stride); dx == nil {
		return
	}
	dy, y, x = dy[:len(dx)], y[:len(dx)], x[:len(dx)]
	if useBN512 {
		bnGradInReLU512(&dx[0], &dy[0], &y[0], &x[0], runs, n, stride, gm, mf, k, sf)
		return
	}
	bnGradInReLURef(dx, dy, y, x, runs, n, stride, gm, mf, k, sf)
}

// reluMask is ReLUGrad's value for one element.
func reluMask(g, y float32) float32 {
	keep := -min(math.Float32bits(y), 1)
	return math.Float32frombits(math.Float32bits(g) & keep)
}

// reduce32 adds the 32 partial sums as the assembly does: the four
// registers pairwise, then halves of the 8 lanes, 4, 2.
func reduce32(a *[32]float64) float64 {
	var t [8]float64
	for i := range t {
		t[i] = (a[i] + a[8+i]) + (a[16+i] + a[24+i])
	}
	u0, u1, u2, u3 := t[0]+t[4], t[1]+t[5], t[2]+t[6], t[3]+t[7]
	return (u0 + u2) + (u1 + u3)
}

func bnSumRef(x []float32, runs, n, stride int) float64 {
	var acc [32]float64
	for r := range runs {
		for i, v := range x[r*stride : r*stride+n] {
			acc[i%32] += float64(v)
		}
	}
	return reduce32(&acc)
}

func bnSqDevRef(x []float32, runs, n, stride int, mean float64) float64 {
	var acc [32]float64
	for r := range runs {
		for i, v := range x[r*stride : r*stride+n] {
			d := float64(v) - mean
			acc[i%32] += float64(d * d) // rounded: no fused multiply-add
		}
	}
	return reduce32(&acc)
}

func bnDotDevRef(dy, x []float32, runs, n, stride int, mean float64) (sum, dot float64) {
	var s, d [32]float64
	for r := range runs {
		at := r * stride
		for i, g := range dy[at : at+n] {
			s[i%32] += float64(g)
			d[i%32] += float64(float64(g) * (float64(x[at+i]) - mean))
		}
	}
	return reduce32(&s), reduce32(&d)
}

func bnDotDevReLURef(dy, y, x []float32, runs, n, stride int, mean float64) (sum, dot float64) {
	var s, d [32]float64
	for r := range runs {
		at := r * stride
		for i, g := range dy[at : at+n] {
			g = reluMask(g, y[at+i])
			s[i%32] += float64(g)
			d[i%32] += float64(float64(g) * (float64(x[at+i]) - mean))
		}
	}
	return reduce32(&s), reduce32(&d)
}

func scaleShiftReLURef(y, x []float32, runs, n, stride int, a, b float32) {
	for r := range runs {
		at := r * stride
		ys := y[at : at+n]
		for i, v := range x[at : at+n] {
			ys[i] = max(float32(v*a)+b, 0)
		}
	}
}

func bnGradInReLURef(dx, dy, y, x []float32, runs, n, stride int, gm, mf, k, sf float32) {
	for r := range runs {
		at := r * stride
		d, xs, ys := dx[at:at+n], x[at:at+n], y[at:at+n]
		for i, g := range dy[at : at+n] {
			g = reluMask(g, ys[i])
			d[i] = float32((g-gm)-float32((xs[i]-mf)*k)) * sf
		}
	}
}

func scaleShiftRef(y, x []float32, runs, n, stride int, a, b float32) {
	for r := range runs {
		at := r * stride
		ys := y[at : at+n]
		for i, v := range x[at : at+n] {
			ys[i] = float32(v*a) + b
		}
	}
}

func bnGradInRef(dx, dy, x []float32, runs, n, stride int, gm, mf, k, sf float32) {
	for r := range runs {
		at := r * stride
		d, xs := dx[at:at+n], x[at:at+n]
		for i, g := range dy[at : at+n] {
			d[i] = float32((g-gm)-float32((xs[i]-mf)*k)) * sf
		}
	}
}
