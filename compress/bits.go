package compress

import "fmt"

// bitWriter packs unsigned fields LSB-first: field i starts at the bit after
// field i-1, bit k of the stream is bit k%8 of byte k/8, and the last byte is
// padded with zeros.
type bitWriter struct {
	b   []byte
	acc uint64
	n   uint // bits in acc
}

func (w *bitWriter) write(v uint64, width uint) {
	for width > 0 {
		take := min(width, 64-w.n)
		w.acc |= (v & (1<<take - 1)) << w.n
		w.n += take
		v >>= take
		width -= take
		for w.n >= 8 {
			w.b = append(w.b, byte(w.acc))
			w.acc >>= 8
			w.n -= 8
		}
	}
}

func (w *bitWriter) bytes() []byte {
	if w.n > 0 {
		w.b = append(w.b, byte(w.acc))
		w.acc, w.n = 0, 0
	}
	return w.b
}

// bitBytes is the bytes count fields of width bits take.
func bitBytes(count, width int) int { return (count*width + 7) / 8 }

// bitReader reads what bitWriter wrote, never past its slice.
type bitReader struct {
	b   []byte
	pos int // in bits
}

func (r *bitReader) read(width uint) (uint64, error) {
	if r.pos+int(width) > 8*len(r.b) {
		return 0, fmt.Errorf("bit field past the end of its %d bytes", len(r.b))
	}
	var v uint64
	for got := uint(0); got < width; {
		byteAt, shift := r.pos/8, uint(r.pos%8)
		take := min(width-got, 8-shift)
		v |= uint64(r.b[byteAt]>>shift) & (1<<take - 1) << got
		got += take
		r.pos += int(take)
	}
	return v, nil
}
