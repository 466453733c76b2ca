// Package bnoracle holds the scalar sums of nn/batchnorm.go before its
// vector kernels (main at 358b80e), verbatim: the summation order the
// shipped ResNet checkpoints were recorded in, which internal/vec's kernels
// and nn's batch norm are tested against bit for bit. Only tests import it.
//
// Built at GOAMD64=v3 or above, the compiler fuses the multiply-adds below
// and this is no longer that order; the tests that use it are excluded
// there (builds pin v1: see Taskfile.yml).
package bnoracle

// Sum64 is Σx in float64, in four interleaved partial sums.
func Sum64(x []float32) float64 {
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

// SqDev64 is Σ(x - mean)² in float64, in four interleaved partial sums.
func SqDev64(x []float32, mean float64) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		d0, d1, d2, d3 := float64(x[i])-mean, float64(x[i+1])-mean, float64(x[i+2])-mean, float64(x[i+3])-mean
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(x); i++ {
		d := float64(x[i]) - mean
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

// DotDev64 is Σdy and Σdy·(x - mean) in float64.
func DotDev64(dy, x []float32, mean float64) (sum, dot float64) {
	x = x[:len(dy)]
	var s0, s1, d0, d1 float64
	i := 0
	for ; i+2 <= len(dy); i += 2 {
		g0, g1 := float64(dy[i]), float64(dy[i+1])
		s0 += g0
		s1 += g1
		d0 += g0 * (float64(x[i]) - mean)
		d1 += g1 * (float64(x[i+1]) - mean)
	}
	for ; i < len(dy); i++ {
		g := float64(dy[i])
		s0 += g
		d0 += g * (float64(x[i]) - mean)
	}
	return s0 + s1, d0 + d1
}
