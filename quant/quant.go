// Package quant holds the quantization numerics shared with PyTorch's torch.ao
// observers, bit for bit: the range, the scale and zero point, rounding, and the
// packed layout compressed-tensors uses below 8 bits. It knows nothing of models.
package quant

import (
	"fmt"
	"math"
)

// Epsilon is float32's machine epsilon, the smallest scale an observer returns.
const Epsilon = float32(1.0 / (1 << 23))

// Scheme is symmetric (zero point 0) or asymmetric (affine).
type Scheme string

const (
	Symmetric  Scheme = "symmetric"
	Asymmetric Scheme = "asymmetric"
)

// Granularity is one scale for the tensor or one per output channel (row 0 axis).
type Granularity string

const (
	PerTensor  Granularity = "per_tensor"
	PerChannel Granularity = "per_channel"
)

// Spec is how to quantize one tensor.
type Spec struct {
	Bits        int         `json:"bits"`
	Scheme      Scheme      `json:"scheme"`
	Granularity Granularity `json:"granularity"`
	// ReduceRange quantizes activations as PyTorch's dynamic operators do at
	// run time (fbgemm's and onednn's quantized::linear_dynamic, the
	// quantized LSTM): unsigned codes over half the range, 0..2^(b-1)-1
	// (0..127 at 8 bits, so AVX2's 16-bit pair sums cannot saturate), with
	// ATen's ChooseQuantizationParams (ChooseParams) instead of the
	// observers' rule. Only for asymmetric per-tensor activations.
	ReduceRange bool `json:"reduce_range,omitempty"`
}

// MaxBits is the widest integer shrink quantizes to (I8 storage).
const MaxBits = 8

// Validate checks a spec read from a file: the bit width in 1 to MaxBits (Range
// and the packing shift by it), a known scheme and granularity. A spec that
// fails would otherwise panic or divide by zero where it is used.
func (s Spec) Validate() error {
	if s.Bits < 1 || s.Bits > MaxBits {
		return fmt.Errorf("bits %d: must be 1 to %d", s.Bits, MaxBits)
	}
	if s.Scheme != Symmetric && s.Scheme != Asymmetric {
		return fmt.Errorf("scheme %q: must be %s or %s", s.Scheme, Symmetric, Asymmetric)
	}
	if s.Granularity != PerTensor && s.Granularity != PerChannel {
		return fmt.Errorf("granularity %q: must be %s or %s", s.Granularity, PerTensor, PerChannel)
	}
	return nil
}

// Range is qmin, qmax for the bit width: -2^(b-1), 2^(b-1)-1; with
// ReduceRange, 0 and (2^b - 1)/2 as ATen halves quint8's 0..255.
func (s Spec) Range() (qmin, qmax int32) {
	if s.ReduceRange {
		return 0, (1<<s.Bits - 1) / 2
	}
	return -(1 << (s.Bits - 1)), 1<<(s.Bits-1) - 1
}

func (s Spec) String() string {
	if s.ReduceRange {
		return fmt.Sprintf("int%d %s %s reduce_range", s.Bits, s.Scheme, s.Granularity)
	}
	return fmt.Sprintf("int%d %s %s", s.Bits, s.Scheme, s.Granularity)
}

// Params are a tensor's quantization parameters: one scale and zero point, or one
// per channel.
type Params struct {
	Scale     []float32
	ZeroPoint []int32
}

// Channels returns how many scales a tensor of this shape gets.
func (s Spec) Channels(shape []int) int {
	if s.Granularity == PerChannel && len(shape) > 0 {
		return shape[0]
	}
	return 1
}

// MinMax returns the min and max of each channel (or the whole tensor): rows of
// len(w)/channels values.
func MinMax(w []float32, channels int) (mins, maxs []float32) {
	mins, maxs = make([]float32, channels), make([]float32, channels)
	MinMaxInto(w, mins, maxs)
	return mins, maxs
}

// MinMaxInto is MinMax into mins and maxs, one entry per channel: for a
// training step's observers, which must not allocate.
func MinMaxInto(w, mins, maxs []float32) {
	channels := len(mins)
	n := len(w) / channels
	for c := 0; c < channels; c++ {
		row := w[c*n : (c+1)*n]
		lo, hi := float32(0), float32(0)
		if len(row) > 0 {
			lo, hi = row[0], row[0]
		}
		for _, x := range row {
			lo = min(lo, x)
			hi = max(hi, x)
		}
		mins[c], maxs[c] = lo, hi
	}
}

// Observe computes the parameters from observed ranges, as
// UniformQuantizationObserverBase._calculate_qparams does, in float32.
func (s Spec) Observe(mins, maxs []float32) Params {
	var p Params
	s.ObserveInto(&p, mins, maxs)
	return p
}

// ObserveRange is Observe of one range (a per-tensor input).
func (s Spec) ObserveRange(lo, hi float32) Params {
	return s.Observe([]float32{lo}, []float32{hi})
}

// ObserveInto is Observe into p, reusing its slices when their length fits.
func (s Spec) ObserveInto(p *Params, mins, maxs []float32) {
	if len(p.Scale) != len(mins) || len(p.ZeroPoint) != len(mins) {
		p.Scale, p.ZeroPoint = make([]float32, len(mins)), make([]int32, len(mins))
	}
	qmin, qmax := s.Range()
	for c := range mins {
		p.Scale[c], p.ZeroPoint[c] = s.qparams(mins[c], maxs[c], qmin, qmax)
	}
}

func (s Spec) qparams(lo, hi float32, qmin, qmax int32) (float32, int32) {
	if s.ReduceRange {
		return ChooseParams(lo, hi, qmin, qmax)
	}
	minNeg := min(lo, 0)
	maxPos := max(hi, 0)
	if s.Scheme == Symmetric {
		scale := max(-minNeg, maxPos) / (float32(qmax-qmin) / 2)
		return max(scale, Epsilon), 0
	}
	return Affine(lo, hi, qmin, qmax)
}

// Affine is the asymmetric rule for any integer range [qmin, qmax], signed
// weights or unsigned activations (quint8: 0..255, or 0..127 with
// reduce_range): the range widened to include 0, scale = (max - min) /
// (qmax - qmin) in float32 and at least Epsilon, zero point = qmin -
// round_half_even(min / scale), clamped to [qmin, qmax].
func Affine(lo, hi float32, qmin, qmax int32) (scale float32, zeroPoint int32) {
	minNeg := min(lo, 0)
	maxPos := max(hi, 0)
	scale = max((maxPos-minNeg)/float32(qmax-qmin), Epsilon)
	zp := qmin - int32(roundHalfEven32(minNeg/scale))
	return scale, min(max(zp, qmin), qmax)
}

// ParamsOf is the scale and zero point of one observed range [lo, hi] (a
// per-tensor activation), without allocating.
func (s Spec) ParamsOf(lo, hi float32) (float32, int32) {
	qmin, qmax := s.Range()
	return s.qparams(lo, hi, qmin, qmax)
}

// ParamsFor observes w (shaped shape) and returns its parameters.
func (s Spec) ParamsFor(w []float32, shape []int) Params {
	mins, maxs := MinMax(w, s.Channels(shape))
	return s.Observe(mins, maxs)
}

// Quantize maps w to integers with p: q = clamp(round_half_even(w * inv) + zp) with
// inv = float32(1/scale) and the product rounded to float32, as ATen does.
func (s Spec) Quantize(w []float32, p Params, q []int32) {
	qmin, qmax := s.Range()
	channels := len(p.Scale)
	n := len(w) / channels
	for c := 0; c < channels; c++ {
		inv := 1 / p.Scale[c] // float32 division, as ATen's 1.0f / scale
		zp := p.ZeroPoint[c]
		for i := c * n; i < (c+1)*n; i++ {
			v := code(w[i], inv, zp)
			q[i] = min(max(v, qmin), qmax)
		}
	}
}

// Dequantize maps integers back to floats: (q - zp) * scale.
func Dequantize(q []int32, p Params, w []float32) {
	channels := len(p.Scale)
	n := len(q) / channels
	for c := 0; c < channels; c++ {
		s, zp := p.Scale[c], p.ZeroPoint[c]
		for i := c * n; i < (c+1)*n; i++ {
			w[i] = float32(q[i]-zp) * s
		}
	}
}

// FakeQuantize rounds w to the quantization grid in place of out (out may be w):
// Dequantize(Quantize(w)).
func (s Spec) FakeQuantize(w []float32, p Params, out []float32) {
	qmin, qmax := s.Range()
	channels := len(p.Scale)
	n := len(w) / channels
	for c := 0; c < channels; c++ {
		scale, zp := p.Scale[c], p.ZeroPoint[c]
		inv := 1 / scale
		for i := c * n; i < (c+1)*n; i++ {
			v := code(w[i], inv, zp)
			v = min(max(v, qmin), qmax)
			out[i] = float32(v-zp) * scale
		}
	}
}

// code is round_half_even(x * inv) + zp before clamping. The rounded product is
// bounded first so converting it to int32 is defined even for inputs far outside
// a calibrated range.
func code(x, inv float32, zp int32) int32 {
	r := roundHalfEven32(x * inv)
	r = min(max(r, -1<<24), 1<<24)
	return int32(r) + zp
}

// roundHalfEven32 rounds a float32 to the nearest integer, ties to even, as
// std::nearbyint does under the default rounding mode.
func roundHalfEven32(x float32) float32 {
	return float32(math.RoundToEven(float64(x)))
}

// FakeQuantizeMask is FakeQuantize that also marks, in inside, where
// round(w * inv) + zp fell within [qmin, qmax] before clamping (1) or outside (0):
// the mask of PyTorch's clipped straight-through gradient.
func (s Spec) FakeQuantizeMask(w []float32, p Params, out, inside []float32) {
	qmin, qmax := s.Range()
	channels := len(p.Scale)
	n := len(w) / channels
	for c := 0; c < channels; c++ {
		scale, zp := p.Scale[c], p.ZeroPoint[c]
		inv := 1 / scale
		for i := c * n; i < (c+1)*n; i++ {
			v := code(w[i], inv, zp)
			if v < qmin || v > qmax {
				inside[i] = 0
				v = min(max(v, qmin), qmax)
			} else {
				inside[i] = 1
			}
			out[i] = float32(v-zp) * scale
		}
	}
}
