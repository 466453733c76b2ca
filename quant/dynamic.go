package quant

import "math"

// SmallScale is ATen's SMALL_SCALE_THRESHOLD: ChooseParams never returns a
// smaller scale (fp16's smallest normal, "to be consistent with Glow").
const SmallScale = float32(6.1e-5)

// ChooseParams is ATen's quant_utils::ChooseQuantizationParams without
// preserve_sparsity and force_scale_power_of_two, the rule PyTorch's dynamic
// operators (quantized::linear_dynamic, the quantized LSTM's projections)
// apply at run time to each input tensor's min and max
// (aten/src/ATen/native/quantized/cpu/QuantUtils.h in PyTorch 1.13; fbgemm's
// ChooseQuantizationParams is the same code). For reduce_range the caller
// passes the halved range, qmin 0 and qmax 127.
//
// It differs from the observers' rule (Spec.Observe) in three places: the
// scale is computed in float64 and only then rounded to float32; a scale
// below SmallScale is raised to it (and one whose reciprocal overflows float32
// becomes 0.1); and the zero point is taken from whichever end of the range
// gives the smaller rounding error, rounded half to even, and clamped.
func ChooseParams(lo, hi float32, qmin, qmax int32) (scale float32, zeroPoint int32) {
	lo = min(lo, 0)
	hi = max(hi, 0)
	s := (float64(hi) - float64(lo)) / float64(qmax-qmin)
	if float32(s) == 0 || math.IsInf(float64(1/float32(s)), 0) {
		s = 0.1
	}
	if s < float64(SmallScale) {
		org := float32(s)
		s = float64(SmallScale)
		switch {
		case lo == 0:
			hi = SmallScale * float32(qmax-qmin)
		case hi == 0:
			lo = -SmallScale * float32(qmax-qmin)
		default:
			amp := SmallScale / org
			lo *= amp
			hi *= amp
		}
	}
	fromMin := float64(qmin) - float64(lo)/s
	fromMax := float64(qmax) - float64(hi)/s
	errMin := math.Abs(float64(qmin)) - math.Abs(float64(lo)/s)
	errMax := math.Abs(float64(qmax)) - math.Abs(float64(hi)/s)
	zp := fromMax
	if errMin < errMax {
		zp = fromMin
	}
	switch {
	case zp < float64(qmin):
		zeroPoint = qmin
	case zp > float64(qmax):
		zeroPoint = qmax
	default:
		zeroPoint = int32(math.RoundToEven(zp))
	}
	return float32(s), zeroPoint
}
