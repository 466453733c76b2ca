package quant

import "fmt"

// PackedWidth is the number of int32 words a row of cols values of b bits takes in
// the pack-quantized layout: the row's bits laid end to end, no padding between
// values, the last word padded with zeros.
func PackedWidth(cols, bits int) int {
	return (cols*bits + 31) / 32
}

// PackedBits guesses the bit width of rows packed in words int32 each, for a
// file that does not say it: 4 bits is tried first, then 3, then 2 (widths
// can share a word count; the metadata settles it when present).
func PackedBits(cols, words int) (int, bool) {
	for _, b := range []int{4, 3, 2} {
		if PackedWidth(cols, b) == words {
			return b, true
		}
	}
	return 0, false
}

// Pack lays out q (rows x cols integers in [-2^(b-1), 2^(b-1)-1]) as
// compressed-tensors' pack-quantized weight_packed: each value offset by 2^(b-1) to
// an unsigned b-bit code, value j of a row at bit j*b of that row's little-endian
// stream of int32 words; each row starts on a new word.
func Pack(q []int32, rows, cols, bits int) []int32 {
	width := PackedWidth(cols, bits)
	out := make([]int32, rows*width)
	offset := int32(1) << (bits - 1)
	mask := uint64(1)<<bits - 1
	for r := 0; r < rows; r++ {
		words := out[r*width : (r+1)*width]
		for j, v := range q[r*cols : (r+1)*cols] {
			code := uint64(v+offset) & mask
			bit := j * bits
			w, shift := bit/32, bit%32
			words[w] = int32(uint32(words[w]) | uint32(code<<shift))
			if shift+bits > 32 {
				words[w+1] = int32(uint32(words[w+1]) | uint32(code>>(32-shift)))
			}
		}
	}
	return out
}

// Unpack reverses Pack.
func Unpack(packed []int32, rows, cols, bits int) ([]int32, error) {
	width := PackedWidth(cols, bits)
	if len(packed) != rows*width {
		return nil, fmt.Errorf("packed weights hold %d words, shape %dx%d at %d bits needs %d", len(packed), rows, cols, bits, rows*width)
	}
	q := make([]int32, rows*cols)
	offset := int32(1) << (bits - 1)
	mask := uint64(1)<<bits - 1
	for r := 0; r < rows; r++ {
		words := packed[r*width : (r+1)*width]
		for j := 0; j < cols; j++ {
			bit := j * bits
			w, shift := bit/32, bit%32
			code := uint64(uint32(words[w])) >> shift
			if shift+bits > 32 {
				code |= uint64(uint32(words[w+1])) << (32 - shift)
			}
			q[r*cols+j] = int32(code&mask) - offset
		}
	}
	return q, nil
}
