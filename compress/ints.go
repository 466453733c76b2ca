package compress

import (
	"encoding/binary"
	"fmt"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/quant"
)

// Layouts of an integer section: what the stored integers become.
const (
	layoutElements = 0 // the tensor's own elements (I8, I16 or I32)
	layoutPacked   = 1 // compressed-tensors' pack-quantized I32 words, rebuilt with quant.Pack
)

// ints is an integer tensor ready to encode: its logical values (for a packed
// tensor, the quantized integers, not the words), rows (the background changes
// per row) and each row's background (the zero point), or one for all rows.
type ints struct {
	values      []int32
	rows        int
	backgrounds []int32
	packedBits  int // layoutPacked: the bit width of the packed words; 0 otherwise
	cols        int // layoutPacked: the logical columns
}

// signedWidth is the fewest bits holding v in two's complement (at least 1).
func signedWidth(v int32) uint {
	if v < 0 {
		v = ^v
	}
	w := uint(1)
	for v != 0 {
		v >>= 1
		w++
	}
	return w
}

func (t *ints) background(i int) int32 {
	if len(t.backgrounds) == 1 {
		return t.backgrounds[0]
	}
	return t.backgrounds[i/(len(t.values)/t.rows)]
}

// How an integer section's values are laid out.
const (
	valuesPacked = 0 // w bits each, LSB-first, offset binary (v + 2^(w-1))
	valuesBytes  = 1 // one byte each, offset binary: for w <= 8, when it codes smaller
)

// encodeInts writes an integer payload: layout, value width, backgrounds,
// structure, then the values.
func encodeInts(w *writer, t *ints) {
	if t.packedBits > 0 {
		w.u8(layoutPacked)
		w.u8(byte(t.packedBits))
		w.uvarint(uint64(t.cols))
	} else {
		w.u8(layoutElements)
	}
	width := uint(1)
	var kept []int
	for i, v := range t.values {
		width = max(width, signedWidth(v))
		if v != t.background(i) {
			kept = append(kept, i)
		}
	}
	w.u8(byte(width))
	w.uvarint(uint64(len(t.backgrounds)))
	for _, b := range t.backgrounds {
		w.varint(int64(b))
	}
	n := len(t.values)
	values := func(idx []int) []stream { return intStreams(t.values, idx, width) }
	s, v := choose(kept, n, values)
	writeStructure(w, s, kept, n)
	w.u8(v.format)
	w.cut()
	w.raw(v.b)
}

// intStreams lays out the values at positions idx (nil: all) bit-packed, and
// for widths up to 8 also one per byte: packing 5 to 7 bits straddles bytes,
// which hides the values' skewed distribution from zstd's byte-wise entropy
// coder; a byte each lets it code them near their entropy.
func intStreams(values []int32, idx []int, width uint) []stream {
	offset := int64(1) << (width - 1)
	var bw bitWriter
	var bytes []byte
	put := func(v int32) {
		u := uint64(int64(v) + offset)
		bw.write(u, width)
		if width <= 8 {
			bytes = append(bytes, byte(u))
		}
	}
	if idx == nil {
		for _, v := range values {
			put(v)
		}
	} else {
		for _, i := range idx {
			put(values[i])
		}
	}
	out := []stream{{valuesPacked, bw.bytes()}}
	if width <= 8 && width != 8 {
		out = append(out, stream{valuesBytes, bytes})
	}
	return out
}

// decodeInts reads an integer payload into the tensor's bytes, out, of dtype dt
// and shape. charge accounts for the logical values, which a packed tensor has
// more of than its words.
func decodeInts(r *reader, dt checkpoint.DType, shape []int, out []byte, charge func(int) error) (string, error) {
	layout := r.u8("layout")
	size := dt.Size()
	n := len(out) / size
	lo, hi := int64(-1)<<(8*size-1), int64(1)<<(8*size-1)-1
	bits, cols := 0, 0
	rows := 1
	if len(shape) > 0 {
		rows = shape[0]
	}
	switch layout {
	case layoutElements:
		if dt != checkpoint.DTypeI8 && dt != checkpoint.DTypeI16 && dt != checkpoint.DTypeI32 {
			return "", fmt.Errorf("integer elements of dtype %s", dt)
		}
	case layoutPacked:
		bits = int(r.u8("packed bits"))
		cols = r.count("packed columns", 1<<31-1)
		if r.err != nil {
			return "", r.err
		}
		if bits < 1 || bits > 8 || dt != checkpoint.DTypeI32 || len(shape) != 2 || shape[1] != quant.PackedWidth(cols, bits) {
			return "", fmt.Errorf("packed %d-bit rows of %d columns cannot make I32 %v (dtype %s)", bits, cols, shape, dt)
		}
		n = rows * cols
		lo, hi = -1<<(bits-1), 1<<(bits-1)-1
	default:
		return "", fmt.Errorf("unknown integer layout %d", layout)
	}
	width := uint(r.u8("value width"))
	nb := r.count("backgrounds", r.left())
	if r.err != nil {
		return "", r.err
	}
	if width < 1 || width > 32 {
		return "", fmt.Errorf("value width %d is outside 1..32", width)
	}
	if nb != 1 && (nb != rows || rows == 0) {
		return "", fmt.Errorf("%d backgrounds for %d rows (want 1 or one per row)", nb, rows)
	}
	bg := make([]int64, nb)
	for i := range bg {
		bg[i] = r.varint("background")
		if r.err == nil && (bg[i] < lo || bg[i] > hi) {
			return "", fmt.Errorf("background %d is outside [%d, %d]", bg[i], lo, hi)
		}
	}
	if r.err != nil {
		return "", r.err
	}
	if err := charge(4 * n); err != nil {
		return "", err
	}
	values := make([]int32, n)
	perRow := 1
	if rows > 0 {
		perRow = max(n/rows, 1)
	}
	for i := range values {
		values[i] = int32(bg[min(i/perRow, nb-1)])
	}
	pos := readStructure(r, n)
	if r.err != nil {
		return "", r.err
	}
	format := r.u8("value layout")
	if r.err != nil {
		return "", r.err
	}
	if format != valuesPacked && (format != valuesBytes || width > 8) {
		return "", fmt.Errorf("value layout %d for %d-bit values", format, width)
	}
	vals := bitReader{b: r.b[r.off:]}
	readWidth := width
	if format == valuesBytes {
		readWidth = 8
	}
	offset := int64(1) << (width - 1)
	count := 0
	for {
		p, err := pos.kept()
		if err != nil {
			return "", err
		}
		if p < 0 {
			break
		}
		u, err := vals.read(readWidth)
		if err != nil {
			return "", fmt.Errorf("values: %w", err)
		}
		v := int64(u) - offset
		if v < lo || v > hi || u >= 1<<width {
			return "", fmt.Errorf("value %d at %d is outside [%d, %d] or its %d bits", v, p, lo, hi, width)
		}
		values[p] = int32(v)
		count++
	}
	if bitBytes(count, int(readWidth)) != len(vals.b) {
		return "", fmt.Errorf("%d value bytes for %d values of %d bits", len(vals.b), count, readWidth)
	}
	r.off = len(r.b)
	desc := fmt.Sprintf("%s, %d int%d values", pos, count, width)
	if format == valuesBytes {
		desc += " a byte each"
	}
	if nb > 1 {
		desc += ", zero point per row"
	} else if bg[0] != 0 {
		desc += fmt.Sprintf(", zero point %d", bg[0])
	}
	if layout == layoutPacked {
		desc += fmt.Sprintf(", packed %d-bit words", bits)
		for i, word := range quant.Pack(values, rows, cols, bits) {
			binary.LittleEndian.PutUint32(out[4*i:], uint32(word))
		}
		return desc, nil
	}
	for i, v := range values {
		switch size {
		case 1:
			out[i] = byte(v)
		case 2:
			binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
		default:
			binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
		}
	}
	return desc, nil
}
