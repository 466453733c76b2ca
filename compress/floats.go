package compress

import (
	"encoding/binary"
	"fmt"
)

// Value formats of a float section.
const (
	valuesF16 = 2 // IEEE binary16, used only when every kept value is exactly one
	valuesF32 = 4
)

// encodeFloats writes an F32 tensor's payload: structure, value format, values.
// The background is +0.0 (bits 0): a -0.0 is kept, so the round trip is exact.
func encodeFloats(w *writer, data []byte) {
	n := len(data) / 4
	var kept []int
	half := true
	for i := 0; i < n; i++ {
		bits := binary.LittleEndian.Uint32(data[4*i:])
		if bits != 0 {
			kept = append(kept, i)
			if _, ok := f16Exact(bits); !ok {
				half = false
			}
		}
	}
	format := byte(valuesF32)
	if half {
		format = valuesF16
	}
	values := func(idx []int) []stream { return []stream{{format, floatPlanes(data, idx, n, format)}} }
	s, v := choose(kept, n, values)
	writeStructure(w, s, kept, n)
	w.u8(v.format)
	// Each byte plane is a stream of its own: exponents code well, low
	// mantissa bytes hardly at all.
	count := len(v.b) / int(v.format)
	for b := 0; b < int(v.format); b++ {
		w.cut()
		w.raw(v.b[b*count : (b+1)*count])
	}
}

// floatPlanes lays out the values at positions idx (nil: all n) as byte planes,
// every value's low byte first, then every next byte: exponents, which repeat,
// end up side by side for the entropy coder.
func floatPlanes(data []byte, idx []int, n int, format byte) []byte {
	count := n
	if idx != nil {
		count = len(idx)
	}
	out := make([]byte, count*int(format))
	for j := 0; j < count; j++ {
		i := j
		if idx != nil {
			i = idx[j]
		}
		bits := binary.LittleEndian.Uint32(data[4*i:])
		v := bits
		if format == valuesF16 {
			h, _ := f16Exact(bits)
			v = uint32(h)
		}
		for b := 0; b < int(format); b++ {
			out[b*count+j] = byte(v >> (8 * b))
		}
	}
	return out
}

// decodeFloats reads what encodeFloats wrote into out (n float32s, zeroed) and
// describes the encoding.
func decodeFloats(r *reader, out []byte) (string, error) {
	n := len(out) / 4
	pos := readStructure(r, n)
	format := int(r.u8("value format"))
	if r.err != nil {
		return "", r.err
	}
	if format != valuesF16 && format != valuesF32 {
		return "", fmt.Errorf("unknown float value format %d", format)
	}
	// The values' count is known only by walking the structure; the planes are
	// the rest of the payload, which must hold exactly count*format bytes.
	rest := r.b[r.off:]
	count := len(rest) / format
	if count*format != len(rest) {
		return "", fmt.Errorf("%d value bytes are not a whole number of %d-byte values", len(rest), format)
	}
	i := 0
	for {
		p, err := pos.kept()
		if err != nil {
			return "", err
		}
		if p < 0 {
			break
		}
		if i == count {
			return "", fmt.Errorf("the structure keeps more elements than the %d values stored", count)
		}
		var v uint32
		for b := 0; b < format; b++ {
			v |= uint32(rest[b*count+i]) << (8 * b)
		}
		if format == valuesF16 {
			v = widenF16(uint16(v))
		}
		binary.LittleEndian.PutUint32(out[4*p:], v)
		i++
	}
	if i != count {
		return "", fmt.Errorf("%d values stored, the structure keeps %d", count, i)
	}
	r.off = len(r.b)
	return fmt.Sprintf("%s, %d f%d values", pos, count, 8*format), nil
}
