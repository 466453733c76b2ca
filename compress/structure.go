package compress

import (
	"fmt"
	"slices"
)

// A section stores the positions of its kept elements (those that differ from
// the background: +0.0 for floats, the zero point for integers) in one of
// three structures, whichever is smallest for that tensor (see choose).
const (
	structDense   = 0 // no structure: every element is stored
	structBitmask = 1 // one bit per element, 1 = kept
	structGaps    = 2 // run lengths of background elements between kept ones
)

// maxGapWidth bounds the gap code width; wider gaps use escapes.
const maxGapWidth = 16

// structure is the chosen structure of one tensor's kept positions.
type structure struct {
	kind     byte
	gapWidth uint // structGaps only
	codes    int  // structGaps only: codes written, escapes included
}

// gapCodes counts the codes the gaps of kept (ascending positions) take at
// width w: a gap g is floor(g/M) escapes (the code M = 2^w - 1, "skip M") then
// g mod M.
func gapCodes(kept []int, w uint) int {
	m := 1<<w - 1
	codes, prev := 0, -1
	for _, p := range kept {
		codes += (p-prev-1)/m + 1
		prev = p
	}
	return codes
}

// stream is one way of storing a tensor's values: a format byte and the bytes.
type stream struct {
	format byte
	b      []byte
}

// choose picks the structure, and the value stream, that entropy-code smallest:
// each candidate (dense; bitmask; gaps at the widths whose codes take fewest
// bytes, and at 8 bits, which zstd's byte-wise coder handles best) is
// compressed alone with the zstd settings of the file, as its block will be.
// values returns the value streams to consider for the elements idx lists
// (nil: every element). Ties go to the simpler structure.
func choose(kept []int, n int, values func(idx []int) []stream) (structure, stream) {
	if len(kept) == n {
		// Nothing to skip: any structure would only add bytes.
		v, _ := smallest(values(nil))
		return structure{kind: structDense}, v
	}
	best := structure{kind: structDense}
	bestValues, bestSize := smallest(values(nil))
	keptValues, valueSize := smallest(values(kept))
	try := func(s structure) {
		var w writer
		writeStructure(&w, s, kept, n)
		if size := codedSize(w.b) + valueSize; size < bestSize {
			best, bestValues, bestSize = s, keptValues, size
		}
	}
	try(structure{kind: structBitmask})
	for _, w := range gapWidths(kept) {
		try(structure{kind: structGaps, gapWidth: w, codes: gapCodes(kept, w)})
	}
	return best, bestValues
}

// gapWidths are the gap code widths worth coding: the three whose codes take
// the fewest bytes, and 8.
func gapWidths(kept []int) []uint {
	widths := make([]uint, maxGapWidth)
	for i := range widths {
		widths[i] = uint(i + 1)
	}
	rawBytes := func(w uint) int { return bitBytes(gapCodes(kept, w), int(w)) }
	slices.SortStableFunc(widths, func(a, b uint) int { return rawBytes(a) - rawBytes(b) })
	out := widths[:3]
	if !slices.Contains(out, 8) {
		out = append(out, 8)
	}
	return out
}

// smallest returns the stream that entropy-codes smallest (the first on ties)
// and its coded size.
func smallest(streams []stream) (stream, int) {
	if len(streams) == 1 {
		return streams[0], codedSize(streams[0].b)
	}
	best, size := streams[0], codedSize(streams[0].b)
	for _, s := range streams[1:] {
		if c := codedSize(s.b); c < size {
			best, size = s, c
		}
	}
	return best, size
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// writeStructure writes s for kept positions among n elements.
func writeStructure(w *writer, s structure, kept []int, n int) {
	w.u8(s.kind)
	switch s.kind {
	case structBitmask:
		mask := make([]byte, (n+7)/8)
		for _, p := range kept {
			mask[p/8] |= 1 << (p % 8)
		}
		w.cut()
		w.raw(mask)
	case structGaps:
		w.u8(byte(s.gapWidth))
		w.uvarint(uint64(s.codes))
		m := uint64(1)<<s.gapWidth - 1
		var bw bitWriter
		prev := -1
		for _, p := range kept {
			g := uint64(p - prev - 1)
			for ; g >= m; g -= m {
				bw.write(m, s.gapWidth)
			}
			bw.write(g, s.gapWidth)
			prev = p
		}
		w.cut()
		w.raw(bw.bytes())
	}
}

// positions iterates over the kept positions a structure stores, in order.
type positions struct {
	kind  byte
	n     int
	next  int // dense and bitmask: the next position to look at
	mask  []byte
	gaps  bitReader
	width uint
	codes int // gap codes left
}

// readStructure reads a structure for n elements; the values follow it.
func readStructure(r *reader, n int) *positions {
	p := &positions{kind: r.u8("structure"), n: n}
	switch p.kind {
	case structDense:
	case structBitmask:
		p.mask = r.bytes("bitmask", (n+7)/8)
	case structGaps:
		p.width = uint(r.u8("gap width"))
		if r.err == nil && (p.width < 1 || p.width > maxGapWidth) {
			r.fail("gap width %d is outside 1..%d", p.width, maxGapWidth)
		}
		p.codes = r.count("gap codes", 8*r.left())
		p.gaps.b = r.bytes("gap codes", bitBytes(p.codes, int(p.width)))
	default:
		r.fail("unknown structure %d", p.kind)
	}
	return p
}

// String names the structure, for inspect.
func (p *positions) String() string {
	switch p.kind {
	case structBitmask:
		return "bitmask"
	case structGaps:
		return fmt.Sprintf("gaps/%d", p.width)
	}
	return "dense"
}

// kept returns the next kept position, or -1 after the last.
func (p *positions) kept() (int, error) {
	switch p.kind {
	case structDense:
		if p.next >= p.n {
			return -1, nil
		}
		p.next++
		return p.next - 1, nil
	case structBitmask:
		for ; p.next < p.n; p.next++ {
			if p.mask[p.next/8]&(1<<(p.next%8)) != 0 {
				p.next++
				return p.next - 1, nil
			}
		}
		return -1, nil
	}
	if p.codes == 0 {
		return -1, nil
	}
	escape := uint64(1)<<p.width - 1
	pos := p.next
	for {
		c, err := p.gaps.read(p.width)
		if err != nil {
			return 0, err
		}
		p.codes--
		pos += int(c)
		if pos >= p.n {
			return 0, fmt.Errorf("gap codes point past the tensor's %d elements", p.n)
		}
		if c != escape {
			break
		}
		if p.codes == 0 {
			return 0, fmt.Errorf("gap codes end with an escape")
		}
	}
	p.next = pos + 1
	return pos, nil
}
