package vec

import "math"

//go:generate go run asm/bngen.go -out bn_amd64.s -stubs bn_stubs_amd64.go -pkg vec

// Batch norm's per-channel kernels. Each walks one channel of a [B, C, S]
// batch: `runs` runs of n floats, run r starting at element r*stride. The
// float64 sums add in exactly the order of the scalar code before them (so
// trainings reproduce its checkpoints bit for bit): each run on its own in
// interleaved partial sums (four for BNSum and BNSqDev, two for the
// gradient sums; the n%4 or n%2 left over go to the first), combined as
// (s0+s1)+(s2+s3), and the runs' results added to the total in run order.
// The AVX-512 assembly (asm/bngen.go) keeps the partial sums of one run in
// the lanes of a register and sums several runs at once in independent
// registers, adding their results in order, so SHRINK_GEMM=purego and
// machines without AVX-512 get the same bits.

// span checks that x holds the runs and returns it cut to them. The
// assembly walks raw pointers, so a negative stride, which would step
// before x, panics here as the Go references' indexing does.
func span(x []float32, runs, n, stride int) []float32 {
	if runs < 1 || n < 1 {
		return nil
	}
	if runs > 1 && stride < 0 {
		panic("vec: negative stride between runs")
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

// sum4 is Σx in float64: four interleaved partial sums, the tail added to
// the first, combined (s0+s1)+(s2+s3).
func sum4(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += float64(x[i])
		s1 += float64(x[i+1])
		s2 += float64(x[i+2])
		s3 += float64(x[i+3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// sqDev4 is Σ(x - mean)² in float64, summed as sum4 does. float64() rounds
// each square: no fused multiply-add, whatever GOAMD64 says.
func sqDev4(x []float32, mean float64) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		d0, d1, d2, d3 := float64(x[i])-mean, float64(x[i+1])-mean, float64(x[i+2])-mean, float64(x[i+3])-mean
		s0 += float64(d0 * d0)
		s1 += float64(d1 * d1)
		s2 += float64(d2 * d2)
		s3 += float64(d3 * d3)
	}
	for ; i < len(x); i++ {
		d := float64(x[i]) - mean
		s0 += float64(d * d)
	}
	return (s0 + s1) + (s2 + s3)
}

// dotDev2 is Σdy and Σdy·(x - mean) in float64, each in two interleaved
// partial sums, the odd last value added to the first.
func dotDev2(dy, x []float32, mean float64) (sum, dot float64) {
	x = x[:len(dy)]
	var s0, s1, d0, d1 float64
	i := 0
	for ; i+2 <= len(dy); i += 2 {
		g0, g1 := float64(dy[i]), float64(dy[i+1])
		s0 += g0
		s1 += g1
		d0 += float64(g0 * (float64(x[i]) - mean))
		d1 += float64(g1 * (float64(x[i+1]) - mean))
	}
	for ; i < len(dy); i++ {
		g := float64(dy[i])
		s0 += g
		d0 += float64(g * (float64(x[i]) - mean))
	}
	return s0 + s1, d0 + d1
}

func bnSumRef(x []float32, runs, n, stride int) float64 {
	var sum float64
	for r := range runs {
		sum += sum4(x[r*stride : r*stride+n])
	}
	return sum
}

func bnSqDevRef(x []float32, runs, n, stride int, mean float64) float64 {
	var sq float64
	for r := range runs {
		sq += sqDev4(x[r*stride:r*stride+n], mean)
	}
	return sq
}

func bnDotDevRef(dy, x []float32, runs, n, stride int, mean float64) (sum, dot float64) {
	for r := range runs {
		at := r * stride
		s, d := dotDev2(dy[at:at+n], x[at:at+n], mean)
		sum += s
		dot += d
	}
	return sum, dot
}

func bnDotDevReLURef(dy, y, x []float32, runs, n, stride int, mean float64) (sum, dot float64) {
	for r := range runs {
		at := r * stride
		s, d := dotDevReLU2(dy[at:at+n], y[at:at+n], x[at:at+n], mean)
		sum += s
		dot += d
	}
	return sum, dot
}

// dotDevReLU2 is dotDev2 of dy masked as ReLUGrad masks it by y.
func dotDevReLU2(dy, y, x []float32, mean float64) (sum, dot float64) {
	y, x = y[:len(dy)], x[:len(dy)]
	var s0, s1, d0, d1 float64
	i := 0
	for ; i+2 <= len(dy); i += 2 {
		g0, g1 := float64(reluMask(dy[i], y[i])), float64(reluMask(dy[i+1], y[i+1]))
		s0 += g0
		s1 += g1
		d0 += float64(g0 * (float64(x[i]) - mean))
		d1 += float64(g1 * (float64(x[i+1]) - mean))
	}
	for ; i < len(dy); i++ {
		g := float64(reluMask(dy[i], y[i]))
		s0 += g
		d0 += float64(g * (float64(x[i]) - mean))
	}
	return s0 + s1, d0 + d1
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
