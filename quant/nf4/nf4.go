package nf4

import (
	"errors"
	"fmt"
	"math"
)

// DefaultBlocksize is bitsandbytes' 4-bit block size on CUDA (and the issue's).
const DefaultBlocksize = 64

// NestedBlocksize is the block size of double quantization (quantize_4bit's
// quantize_blockwise(absmax - offset, blocksize=256)).
const NestedBlocksize = 256

// validBlocksize reports whether bitsandbytes' blockwise kernels accept bs (32 only on
// warp-32 GPUs, but its layout is the same).
func validBlocksize(bs int) bool {
	switch bs {
	case 32, 64, 128, 256, 512, 1024, 2048, 4096:
		return true
	}
	return false
}

// Weight is one weight quantized to NF4, in bitsandbytes' layout. It is read-only once
// built: Dequantize may run on it from several goroutines at once.
type Weight struct {
	// Shape is the weight's shape ([out, in] for a linear layer). The quantization ignores
	// it: blocks run along the row-major flattened weight.
	Shape []int
	// Blocksize is the number of consecutive elements sharing one absmax.
	Blocksize int
	// DType is the dtype bitsandbytes records for the unquantized weight ("float32" from
	// Quantize; "float16" or "bfloat16" in files from elsewhere). Dequantize always gives
	// float32.
	DType string
	// Packed holds two codes a byte, element 2i in the high nibble; ceil(n/2) bytes, the
	// last low nibble 7 when n is odd.
	Packed []byte
	// Absmax is each block's max |w|, or nil when the absmax values are double-quantized
	// (Nested).
	Absmax []float32
	// Nested holds the double-quantized absmax values, or is nil.
	Nested *Nested
}

// Nested is double quantization: the block absmax values, less their mean Offset,
// quantized with the 8-bit Map in blocks of Blocksize. The absmax of block b is
// float32(Map[Codes[b]] * Absmax[b/Blocksize]) + Offset.
type Nested struct {
	Codes     []byte       // one per block of the weight (the file's weight.absmax, U8)
	Absmax    []float32    // one per Blocksize codes (weight.nested_absmax)
	Map       [256]float32 // weight.nested_quant_map: DynamicMap() from Quantize
	Blocksize int          // NestedBlocksize from Quantize
	Offset    float32      // the mean of the absmax values (nested_offset)
	DType     string       // the absmax dtype, "float32"
}

// numel is the product of shape, or an error for an empty or negative dim or an overflow.
func numel(shape []int) (int, error) {
	if len(shape) == 0 {
		return 0, errors.New("shape is empty")
	}
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return 0, fmt.Errorf("shape %v has a dim < 1", shape)
		}
		if n > math.MaxInt32/d {
			return 0, fmt.Errorf("shape %v has more than 2^31-1 elements (bitsandbytes counts them in an int32)", shape)
		}
		n *= d
	}
	return n, nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// Quantize quantizes w (row-major, shaped shape) to NF4 exactly as bitsandbytes'
// quantize_4bit does, with the rules where the kernel is undefined or wrong:
//
//   - blocks of blocksize consecutive elements of the flattened weight; absmax = max |w|;
//   - each element times the float32 reciprocal 1/absmax, then the nearest Code by the 15
//     midpoints, an exact tie going to the lower code (NaN, from 0 times an infinite
//     reciprocal when absmax < 2^-128, gets code 0, as in the kernel);
//   - an all-zero block stores absmax 0 and code 7 (the kernel's 0 * (1/0) = NaN would give
//     code 0, which dequantizes to -absmax after double quantization);
//   - two codes a byte, element 2i in the high nibble; an odd count pads with 7.
//
// With doubleQuant, the absmax values less their mean (float64 sum in order, divided in
// float64, rounded once to float32) are quantized with DynamicMap in blocks of 256 the same
// way, by bitsandbytes' 8-bit search (dQuantize); an all-zero block stores code 127 (0.0).
//
// blocksize is one of 32, 64, ..., 4096 (DefaultBlocksize is 64). w must be finite.
func Quantize(w []float32, shape []int, blocksize int, doubleQuant bool) (*Weight, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, fmt.Errorf("nf4: %v", err)
	}
	if n != len(w) {
		return nil, fmt.Errorf("nf4: shape %v holds %d elements but the weight has %d", shape, n, len(w))
	}
	if !validBlocksize(blocksize) {
		return nil, fmt.Errorf("nf4: blocksize %d: must be 32, 64, 128, 256, 512, 1024, 2048 or 4096", blocksize)
	}
	for i, x := range w {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("nf4: weight element %d is %v; NF4 needs finite weights", i, x)
		}
	}
	q := &Weight{
		Shape:     append([]int(nil), shape...),
		Blocksize: blocksize,
		DType:     "float32",
		Packed:    make([]byte, ceilDiv(n, 2)),
		Absmax:    make([]float32, ceilDiv(n, blocksize)),
	}
	for b := range q.Absmax {
		lo, hi := b*blocksize, min((b+1)*blocksize, n)
		q.Absmax[b] = quantizeBlock(w[lo:hi], q.Packed[lo/2:ceilDiv(hi, 2)])
	}
	if n%2 == 1 {
		q.Packed[n/2] = q.Packed[n/2]&0xF0 | zeroCode
	}
	if doubleQuant {
		q.Nested = quantizeAbsmax(q.Absmax)
		q.Absmax = nil
	}
	return q, nil
}

// quantizeBlock writes the codes of one block (an even offset into the weight) into its
// bytes and returns the block's absmax.
func quantizeBlock(w []float32, out []byte) float32 {
	var m float32
	for _, x := range w {
		m = max(m, float32(math.Abs(float64(x))))
	}
	if m == 0 {
		for i := range out {
			out[i] = zeroCode<<4 | zeroCode
		}
		return 0
	}
	inv := 1 / m
	for i := 0; i+1 < len(w); i += 2 {
		out[i/2] = nf4Code(w[i]*inv)<<4 | nf4Code(w[i+1]*inv)
	}
	if len(w)%2 == 1 {
		out[len(w)/2] = nf4Code(w[len(w)-1]*inv) << 4
	}
	return m
}

// quantizeAbsmax is quantize_4bit's compress_statistics: offset = mean, then
// quantize_blockwise(absmax - offset, blocksize=256) with the dynamic map.
func quantizeAbsmax(absmax []float32) *Nested {
	var sum float64
	for _, a := range absmax {
		sum += float64(a)
	}
	offset := float32(sum / float64(len(absmax)))
	nq := &Nested{
		Codes:     make([]byte, len(absmax)),
		Absmax:    make([]float32, ceilDiv(len(absmax), NestedBlocksize)),
		Map:       dynamicMap,
		Blocksize: NestedBlocksize,
		Offset:    offset,
		DType:     "float32",
	}
	v := make([]float32, NestedBlocksize)
	for b := range nq.Absmax {
		lo, hi := b*NestedBlocksize, min((b+1)*NestedBlocksize, len(absmax))
		blk := v[:hi-lo]
		var m float32
		for i, a := range absmax[lo:hi] {
			blk[i] = a - offset
			m = max(m, float32(math.Abs(float64(blk[i]))))
		}
		nq.Absmax[b] = m
		codes := nq.Codes[lo:hi]
		if m == 0 {
			for i := range codes {
				codes[i] = dynamicZero
			}
			continue
		}
		inv := 1 / m
		for i, x := range blk {
			codes[i] = dQuantize(&nq.Map, x*inv)
		}
	}
	return nq
}

// Len is the number of elements of the weight.
func (q *Weight) Len() int {
	n, err := numel(q.Shape)
	if err != nil {
		return 0
	}
	return n
}

// Blocks is the number of absmax blocks.
func (q *Weight) Blocks() int { return ceilDiv(q.Len(), q.Blocksize) }

// check verifies that the slices fit the shape and block sizes, so the loops that read them
// never index out of range (the fields are exported and may be built by hand).
func (q *Weight) check() error {
	n, err := numel(q.Shape)
	if err != nil {
		return fmt.Errorf("nf4: %v", err)
	}
	if !validBlocksize(q.Blocksize) {
		return fmt.Errorf("nf4: blocksize %d is not one bitsandbytes supports", q.Blocksize)
	}
	if len(q.Packed) != ceilDiv(n, 2) {
		return fmt.Errorf("nf4: %d packed bytes for %d elements, want %d", len(q.Packed), n, ceilDiv(n, 2))
	}
	blocks := ceilDiv(n, q.Blocksize)
	if q.Nested == nil {
		if len(q.Absmax) != blocks {
			return fmt.Errorf("nf4: %d absmax values for %d blocks", len(q.Absmax), blocks)
		}
		return nil
	}
	nq := q.Nested
	if q.Absmax != nil {
		return errors.New("nf4: both Absmax and Nested are set")
	}
	if len(nq.Codes) != blocks {
		return fmt.Errorf("nf4: %d double-quantized absmax codes for %d blocks", len(nq.Codes), blocks)
	}
	if !validBlocksize(nq.Blocksize) {
		return fmt.Errorf("nf4: nested blocksize %d is not one bitsandbytes supports", nq.Blocksize)
	}
	if want := ceilDiv(blocks, nq.Blocksize); len(nq.Absmax) != want {
		return fmt.Errorf("nf4: %d nested absmax values for %d codes in blocks of %d, want %d",
			len(nq.Absmax), blocks, nq.Blocksize, want)
	}
	return nil
}

// absmaxOf is block b's absmax: stored, or dequantized as bitsandbytes'
// dequantize_blockwise then "absmax += offset" do it, in float32. The explicit conversion
// keeps the compiler from fusing the multiply and the add.
func (q *Weight) absmaxOf(b int) float32 {
	if nq := q.Nested; nq != nil {
		return float32(nq.Map[nq.Codes[b]]*nq.Absmax[b/nq.Blocksize]) + nq.Offset
	}
	return q.Absmax[b]
}

// AbsmaxInto writes each block's absmax into dst (len Blocks()): the stored values, or the
// double-quantized ones dequantized.
func (q *Weight) AbsmaxInto(dst []float32) error {
	if err := q.check(); err != nil {
		return err
	}
	if len(dst) != q.Blocks() {
		return fmt.Errorf("nf4: AbsmaxInto: dst has %d values for %d blocks", len(dst), q.Blocks())
	}
	for b := range dst {
		dst[b] = q.absmaxOf(b)
	}
	return nil
}

// Dequantize writes the weight into dst (len Len(), row-major): Code[code] * absmax in
// float32, as bitsandbytes' dequantize_4bit does. It does not allocate; it runs in every
// forward pass of QLoRA training.
func (q *Weight) Dequantize(dst []float32) error {
	if err := q.check(); err != nil {
		return err
	}
	n := q.Len()
	if len(dst) != n {
		return fmt.Errorf("nf4: Dequantize: dst has %d values, the weight %v has %d", len(dst), q.Shape, n)
	}
	bs := q.Blocksize
	for b, lo := 0, 0; lo < n; b, lo = b+1, lo+bs {
		hi := min(lo+bs, n)
		// The block's 16 values, each the same float32 product the per-element formula
		// computes: a table lookup per element instead of a multiply.
		s := q.absmaxOf(b)
		var t [16]float32
		for k := range t {
			t[k] = Code[k] * s
		}
		out := dst[lo:hi]
		expand(out, q.Packed[lo/2:lo/2+len(out)/2], &t)
		if (hi-lo)%2 == 1 {
			dst[hi-1] = t[q.Packed[(hi-1)/2]>>4]
		}
	}
	return nil
}

// expand writes the two values of each byte of src into out: t[high nibble], t[low nibble].
// Its own small function, unrolled through array pointers (one bounds check per 8 bytes),
// keeps every variable of the loop in a register.
func expand(out []float32, src []byte, t *[16]float32) {
	for len(src) >= 8 && len(out) >= 16 {
		s, o := (*[8]byte)(src), (*[16]float32)(out)
		o[0], o[1] = t[s[0]>>4], t[s[0]&15]
		o[2], o[3] = t[s[1]>>4], t[s[1]&15]
		o[4], o[5] = t[s[2]>>4], t[s[2]&15]
		o[6], o[7] = t[s[3]>>4], t[s[3]&15]
		o[8], o[9] = t[s[4]>>4], t[s[4]&15]
		o[10], o[11] = t[s[5]>>4], t[s[5]&15]
		o[12], o[13] = t[s[6]>>4], t[s[6]&15]
		o[14], o[15] = t[s[7]>>4], t[s[7]&15]
		src, out = src[8:], out[16:]
	}
	for j, p := range src {
		out[2*j] = t[p>>4]
		out[2*j+1] = t[p&15]
	}
}

// Bytes is the size of the data of the tensors Tensors writes: the packed codes, the absmax
// values (or their codes, the nested absmax and the 8-bit map), the 16-entry map and the
// quant-state JSON. The safetensors header is not counted.
func (q *Weight) Bytes() int {
	n := len(q.Packed) + 16*4 + len(q.stateJSON())
	if nq := q.Nested; nq != nil {
		return n + len(nq.Codes) + 4*len(nq.Absmax) + 4*len(nq.Map)
	}
	return n + 4*len(q.Absmax)
}
