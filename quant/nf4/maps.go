package nf4

import "math"

// Code is the NF4 data type: bitsandbytes' 16 float32 values (get_4bit_type("nf4"), and
// nf4_dequantization_lut in its CUDA kernels), indexed by the 4-bit code. Code[7] is 0.
var Code = [16]float32{
	-1.0,
	-0.6961928009986877,
	-0.5250730514526367,
	-0.39491748809814453,
	-0.28444138169288635,
	-0.18477343022823334,
	-0.09105003625154495,
	0.0,
	0.07958029955625534,
	0.16093020141124725,
	0.24611230194568634,
	0.33791524171829224,
	0.44070982933044434,
	0.5626170039176941,
	0.7229568362236023,
	1.0,
}

// zeroCode is the code of 0.0: what an all-zero block and the pad nibble store.
const zeroCode = 7

// thresholds[k] is the midpoint of Code[k] and Code[k+1], exact in float64 and rounded to
// float32: the float literals of bitsandbytes' dQuantizeNF4 (a test checks them against
// the kernel's decimals).
var thresholds = func() (t [15]float32) {
	for k := range t {
		t[k] = float32((float64(Code[k]) + float64(Code[k+1])) / 2)
	}
	return t
}()

// nf4Code returns the number of thresholds below v: the nearest code, with an exact tie
// going to the lower one, as dQuantizeNF4's tree of "v > t" tests does. NaN fails every
// test and gets code 0, as in the kernel.
func nf4Code(v float32) byte {
	c := 0
	if v > thresholds[7] {
		c = 8
	}
	if v > thresholds[c+3] {
		c += 4
	}
	if v > thresholds[c+1] {
		c += 2
	}
	if v > thresholds[c] {
		c++
	}
	return byte(c)
}

// dynamicMap is create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8).
var dynamicMap = createDynamicMap()

// DynamicMap returns the signed 8-bit dynamic map double quantization uses for the block
// absmax values: bitsandbytes' create_dynamic_map(signed=True), 256 sorted float32 values
// from -0.99296875 to 1 with 0 at index 127.
func DynamicMap() [256]float32 { return dynamicMap }

// dynamicZero is the index of 0.0 in the dynamic map.
const dynamicZero = 127

// createDynamicMap follows bitsandbytes' create_dynamic_map: for i in 0..6 the means of
// adjacent points of linspace(0.1, 1, 2^i+1), each times +-10^(i-6) (the Python float
// rounded to float32, then a float32 product), plus 0 and 1, sorted.
//
// torch.linspace is the part that varies between PyTorch builds. The map bitsandbytes
// users get (the one copied into other projects, value for value) is the one of the
// "halfway" linspace kernel with fused multiply-adds: start + step*i for the first half,
// end - step*(steps-1-i) for the rest, each rounded once to float32.
func createDynamicMap() (m [256]float32) {
	vals := make([]float32, 0, 256)
	for i := 0; i < 7; i++ {
		b := linspace(0.1, 1, 1<<i+1)
		scale := float32(math.Pow10(i - 6))
		for k := 0; k+1 < len(b); k++ {
			mean := (b[k] + b[k+1]) / 2
			vals = append(vals, scale*mean, -scale*mean)
		}
	}
	vals = append(vals, 0, 1)
	sortFloat32s(vals)
	copy(m[:], vals)
	return m
}

// linspace is the float32 linspace described at createDynamicMap. float64 holds step*i and
// the sum exactly for these arguments (a 24-bit step, i < 128, |start|, |end| <= 1), so the
// conversion to float32 is the one rounding of a fused multiply-add.
func linspace(start, end float32, steps int) []float32 {
	step := (end - start) / float32(steps-1)
	half := steps / 2
	out := make([]float32, steps)
	for i := range out {
		if i < half {
			out[i] = float32(float64(start) + float64(step)*float64(i))
		} else {
			out[i] = float32(float64(end) - float64(step)*float64(steps-1-i))
		}
	}
	return out
}

// sortFloat32s is an insertion sort: 256 values, once, at init, without importing sort for
// a float32 slice.
func sortFloat32s(v []float32) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// dQuantize is bitsandbytes' dQuantize<0> (csrc/kernels.cu), the 8-bit code search, line by
// line: a 7-step binary search in the sorted 256-entry code from pivot 127, then the float32
// midpoint of the pivot it ended on and that pivot's neighbour on x's side decides. An exact
// tie returns the pivot (an even index, as the search always ends on one).
func dQuantize(code *[256]float32, x float32) byte {
	pivot, upperPivot, lowerPivot := 127, 255, 0
	lower, upper := float32(-1), float32(1)
	val := code[pivot]
	for i := 64; i > 0; i >>= 1 {
		if x > val {
			lowerPivot, lower = pivot, val
			pivot += i
		} else {
			upperPivot, upper = pivot, val
			pivot -= i
		}
		val = code[pivot]
	}
	if upperPivot == 255 {
		upper = code[upperPivot]
	}
	if lowerPivot == 0 {
		lower = code[lowerPivot]
	}
	if x > val {
		if x > (upper+val)*0.5 {
			return byte(upperPivot)
		}
		return byte(pivot)
	}
	if x < (lower+val)*0.5 {
		return byte(lowerPivot)
	}
	return byte(pivot)
}
