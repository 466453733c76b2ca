package nn

import (
	"math"

	"github.com/shrink-ml/shrink/internal/vec"
	"github.com/shrink-ml/shrink/quant"
)

// Integer inference of dynamically quantized layers, as PyTorch's
// quantized::linear_dynamic computes it on fbgemm: the input tensor's range
// gives its parameters (quant.ChooseParams), its values become unsigned codes,
// an exact uint8 x int8 product sums them in int32, and the sums become floats
// again with the activation's and the weight's scales:
//
//	y[i][o] = float32(float32(acc[i][o] - zp·Σ_q w[o][q]) · (s_x·s_w[o])) + bias[o]
//
// each operation rounded to float32 on its own. The kernels here are plain Go
// behind the few calls the layers make (int8Pack, int8MatMul, the
// quantize and dequantize steps), so a faster implementation can replace them
// with the same results.

// int8Matrix is a weight of n rows (output units) by k int8 values in
// PyTorch's [out, in] layout, with each row's sum for the activations'
// zero-point correction.
type int8Matrix struct {
	n, k   int
	data   []int8
	rowSum []int32
}

func int8Pack(b []int8, n, k int) *int8Matrix {
	m := &int8Matrix{n: n, k: k, data: b[:n*k], rowSum: make([]int32, n)}
	for j := 0; j < n; j++ {
		var s int32
		for _, v := range b[j*k : (j+1)*k] {
			s += int32(v)
		}
		m.rowSum[j] = s
	}
	return m
}

// int8MatMul sets c[i*ldc+j] = Σ_q a[i*lda+q]·b[j][q] exactly, for m rows of a.
func int8MatMul(m int, a []uint8, lda int, b *int8Matrix, c []int32, ldc int) {
	k := b.k
	for i := 0; i < m; i++ {
		row := a[i*lda : i*lda+k]
		out := c[i*ldc : i*ldc+b.n]
		for j := range out {
			w := b.data[j*k : (j+1)*k]
			var s int32
			for q, v := range row {
				s += int32(v) * int32(w[q])
			}
			out[j] = s
		}
	}
}

// actParams are one tensor's activation parameters: code = clamp(round(x ·
// float32(1/Scale)) + ZeroPoint, 0, qmax).
type actParams struct {
	Scale     float32
	ZeroPoint int32
}

// chooseAct measures an m×k block of x (rows ldx apart) and returns the
// parameters spec's rule gives its range.
func chooseAct(spec quant.Spec, m, k int, x []float32, ldx int) actParams {
	var r actRange
	for i := 0; i < m; i++ {
		r.add(x[i*ldx : i*ldx+k])
	}
	return r.params(spec)
}

// actRange is a tensor's min and max, gathered piece by piece.
type actRange struct {
	lo, hi float32
	seen   bool
}

func (r *actRange) add(x []float32) {
	if len(x) == 0 {
		return
	}
	lo, hi := vec.MinMax(x)
	if !r.seen {
		r.lo, r.hi, r.seen = lo, hi, true
		return
	}
	r.lo, r.hi = min(r.lo, lo), max(r.hi, hi)
}

func (r *actRange) params(spec quant.Spec) actParams {
	scale, zp := spec.ParamsOf(r.lo, r.hi)
	return actParams{Scale: scale, ZeroPoint: zp}
}

// int8Quantize writes the codes of an m×k block of x with p into q (rows ldq
// apart): round half to even of x times float32(1/scale), plus the zero
// point, clamped to [0, qmax].
func int8Quantize(m, k int, x []float32, ldx int, p actParams, qmax int32, q []uint8, ldq int) {
	inv := 1 / p.Scale
	for i := 0; i < m; i++ {
		dst := q[i*ldq : i*ldq+k]
		for j, v := range x[i*ldx : i*ldx+k] {
			r := float32(math.RoundToEven(float64(v * inv)))
			r = min(max(r, -1<<24), 1<<24)
			dst[j] = uint8(min(max(int32(r)+p.ZeroPoint, 0), qmax))
		}
	}
}

// int8Dequantize turns the m×n sums acc into floats in y (the formula above),
// adding to y instead of overwriting it when add is set (an LSTM step adds its
// hidden projection to its input projection). wScale has 1 or n entries;
// bias may be nil.
func int8Dequantize(m int, acc []int32, ldacc int, p actParams, w *int8Matrix, wScale, bias []float32, y []float32, ldy int, add bool) {
	n := w.n
	for i := 0; i < m; i++ {
		a := acc[i*ldacc : i*ldacc+n]
		out := y[i*ldy : i*ldy+n]
		for o, v := range a {
			mult := p.Scale * wScale[min(o, len(wScale)-1)]
			// The conversions keep each operation rounded on its own (no FMA).
			r := float32(float32(v-p.ZeroPoint*w.rowSum[o]) * mult)
			if bias != nil {
				r = float32(r + bias[o])
			}
			if add {
				out[o] += r
			} else {
				out[o] = r
			}
		}
	}
}
