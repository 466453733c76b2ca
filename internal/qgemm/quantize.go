package qgemm

import (
	"fmt"

	"github.com/shrink-ml/shrink/quant"
)

// Params are per-tensor activation quantization parameters: a float x is
// the code clamp(round_half_even(x/Scale) + ZeroPoint, 0, Range) (the
// division as a product by float32(1/Scale), as ATen computes it).
type Params struct {
	Scale     float32
	ZeroPoint int32
}

// ChooseParams returns the parameters torch.ao's MinMaxObserver gives
// quint8 activations (per tensor, affine) that ranged over [lo, hi]:
// quant.Affine with qmin 0 and qmax r (127 for reduce_range), in float32,
// the zero point rounded half to even.
func ChooseParams(lo, hi float32, r Range) Params {
	s, zp := quant.Affine(lo, hi, 0, int32(r))
	return Params{Scale: s, ZeroPoint: zp}
}

// Quantize is dynamic quantization of an m×k block of activations (rows
// ldx apart in x): it takes the block's minimum and maximum (widened to
// include 0; NaN values are skipped), chooses the parameters with
// ChooseParams, writes the codes to q (rows ldq apart) and returns the
// parameters. One set of parameters covers the whole block, as PyTorch's
// dynamic linear and LSTM layers quantize each input tensor.
func Quantize(m, k int, x []float32, ldx int, r Range, q []uint8, ldq int) Params {
	checkBlock("Quantize", m, k, x, ldx, r, q, ldq)
	im := active.Load()
	lo, hi := im.minMax(m, k, x, ldx)
	p := ChooseParams(lo, hi, r)
	quantizeBlock(im, m, k, x, ldx, p, r, q, ldq)
	return p
}

// QuantizeWith writes the codes of an m×k block with given parameters
// (static quantization, or a block quantized like another).
func QuantizeWith(m, k int, x []float32, ldx int, p Params, r Range, q []uint8, ldq int) {
	checkBlock("QuantizeWith", m, k, x, ldx, r, q, ldq)
	quantizeBlock(active.Load(), m, k, x, ldx, p, r, q, ldq)
}

func quantizeBlock(im *impl, m, k int, x []float32, ldx int, p Params, r Range, q []uint8, ldq int) {
	inv := 1 / p.Scale // float32, as ATen's 1.0f / scale
	im.quantize(m, k, x, ldx, q, ldq, inv, p.ZeroPoint, int32(r))
}

func checkBlock(fn string, m, k int, x []float32, ldx int, r Range, q []uint8, ldq int) {
	switch {
	case m < 0 || k < 0:
		panic(fmt.Sprintf("qgemm: %s of %d×%d: negative size", fn, m, k))
	case !r.valid():
		panic(fmt.Sprintf("qgemm: %s: range %d is neither Full nor Reduced", fn, r))
	case ldx < max(1, k) || ldq < max(1, k):
		panic(fmt.Sprintf("qgemm: %s: ldx %d and ldq %d must be at least k %d", fn, ldx, ldq, k))
	case m > 0 && (len(x) < (m-1)*ldx+k || len(q) < (m-1)*ldq+k):
		panic(fmt.Sprintf("qgemm: %s of %d×%d: x has %d values and q %d, want %d and %d", fn, m, k, len(x), len(q), (m-1)*ldx+k, (m-1)*ldq+k))
	}
}
