package nn

import (
	"math"

	"github.com/shrink-ml/shrink/internal/qgemm"
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
// each operation rounded to float32 on its own. The products, the codes and
// the rescaling run on internal/qgemm (AVX-512 VNNI, AVX2 or Go, the same
// integers and the same bits on every path); the parameters come from the
// layer's quant.Spec, so the rule stays the one the recipe names.

// int8Matrix is a weight of n rows (output units) by k int8 values in
// PyTorch's [out, in] layout, packed once for qgemm.
type int8Matrix struct {
	n, k int
	p    *qgemm.Packed
}

func int8Pack(b []int8, n, k int) *int8Matrix {
	return &int8Matrix{n: n, k: k, p: qgemm.Pack(b, n, k)}
}

// codeRange is qgemm's name for codes 0..qmax: 127 (reduce_range, which
// PyTorch's dynamic layers use) or 255.
func codeRange(qmax int32) qgemm.Range {
	if qmax <= int32(qgemm.Reduced) {
		return qgemm.Reduced
	}
	return qgemm.Full
}

// int8MatMul sets c[i*ldc+j] = Σ_q a[i*lda+q]·b[j][q] exactly, for m rows of
// a, codes at most qmax.
func int8MatMul(m int, a []uint8, lda int, qmax int32, b *int8Matrix, c []int32, ldc int) {
	qgemm.MatMul(m, a, lda, codeRange(qmax), b.p, c, ldc)
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
	if r := qgemm.Range(qmax); r == qgemm.Reduced || r == qgemm.Full {
		qgemm.QuantizeWith(m, k, x, ldx, qgemm.Params{Scale: p.Scale, ZeroPoint: p.ZeroPoint}, r, q, ldq)
		return
	}
	// Activations of fewer than 8 bits clamp below qgemm's ranges.
	inv := 1 / p.Scale
	for i := 0; i < m; i++ {
		dst := q[i*ldq : i*ldq+k]
		for j, v := range x[i*ldx : i*ldx+k] {
			r := v * inv
			if !(r >= -1<<24) { // NaN too, as qgemm does
				r = -1 << 24
			}
			r = min(r, 1<<24)
			dst[j] = uint8(min(max(int32(math.RoundToEven(float64(r)))+p.ZeroPoint, 0), qmax))
		}
	}
}

// int8Dequantize turns the m×n sums acc into floats in y (the formula above),
// adding to y instead of overwriting it when add is set (an LSTM step adds its
// hidden projection to its input projection). wScale has 1 or n entries;
// bias may be nil.
func int8Dequantize(m int, acc []int32, ldacc int, p actParams, w *int8Matrix, wScale, bias []float32, y []float32, ldy int, add bool) {
	a := qgemm.Params{Scale: p.Scale, ZeroPoint: p.ZeroPoint}
	if add {
		qgemm.DequantizeAdd(m, acc, ldacc, a, w.p, wScale, bias, y, ldy)
		return
	}
	qgemm.Dequantize(m, acc, ldacc, a, w.p, wScale, bias, y, ldy)
}
