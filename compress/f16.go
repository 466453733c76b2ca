package compress

import "math/bits"

// Half precision is used only where it is lossless: a float32 goes to F16 when
// f16Exact finds an IEEE binary16 that widens back to the same 32 bits (so -0,
// infinities and NaN payloads survive too).

// widenF16 returns the float32 bits of an IEEE binary16 value, exactly.
func widenF16(h uint16) uint32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // infinity or NaN, payload kept
		return sign | 0x7f800000 | mant<<13
	case exp != 0: // normal
		return sign | (exp+127-15)<<23 | mant<<13
	case mant == 0:
		return sign
	}
	// Subnormal: mant * 2^-24; normalize so the leading one becomes implicit.
	shift := uint32(bits.LeadingZeros32(mant)) - 21 // moves the top bit to bit 10
	mant <<= shift
	return sign | (127-15+1-shift)<<23 | (mant&0x3ff)<<13
}

// f16Exact returns the binary16 holding exactly the float32 with bits f.
func f16Exact(f uint32) (uint16, bool) {
	sign := uint16(f>>16) & 0x8000
	exp := int(f>>23) & 0xff
	mant := f & 0x7fffff
	var h uint16
	switch {
	case exp == 0xff:
		h = sign | 0x7c00 | uint16(mant>>13)
	case exp == 0 && mant == 0:
		h = sign
	case exp-127 >= -14 && exp-127 <= 15:
		h = sign | uint16(exp-127+15)<<10 | uint16(mant>>13)
	case exp != 0 && exp-127 >= -24 && exp-127 < -14:
		// binary16 subnormal: (2^23 + mant) * 2^(e-23) = m * 2^-24.
		m := (1<<23 | mant) >> uint(-(exp-127)-1)
		h = sign | uint16(m&0x3ff)
	default:
		return 0, false
	}
	return h, widenF16(h) == f
}
