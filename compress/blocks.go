package compress

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
)

// The body is entropy-coded in blocks, each its own zstd frame with its own
// Huffman and FSE tables: gap codes, 4-bit values and float exponents have
// different statistics, and one table for all of them codes each worse.
const (
	blockStored = 0 // the bytes as they are: coding would not make them smaller
	blockZstd   = 1 // one zstd frame (RFC 8878), content size in its header
)

// smallPiece is the size below which pieces are worth merging: a zstd frame
// costs about 10 bytes and its tables some tens, which matter only to small
// pieces.
const smallPiece = 2048

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendBlocks entropy-codes body into out: body is cut at cuts into pieces; a
// small piece joins the small block before it when coding the two together is
// no larger than apart, so names, shapes and scales do not each pay a frame's
// overhead, while large pieces keep their own tables. A CRC-32C of the body
// follows the blocks.
func appendBlocks(out, body []byte, cuts []int) []byte {
	cost := func(p [2]int) int {
		n := p[1] - p[0]
		return 2*uvarintLen(uint64(n)) + 1 + min(n, codedSize(body[p[0]:p[1]]))
	}
	size := func(p [2]int) int { return p[1] - p[0] }
	var blocks [][2]int // [start, end) in body
	lastCost := -1      // of the last block, once needed
	for _, p := range pieces(len(body), cuts) {
		n := len(blocks)
		if n == 0 || max(size(p), size(blocks[n-1])) >= smallPiece {
			blocks, lastCost = append(blocks, p), -1
			continue
		}
		last := &blocks[n-1]
		if lastCost < 0 {
			lastCost = cost(*last)
		}
		own := cost(p)
		if merged := cost([2]int{last[0], p[1]}); merged <= lastCost+own {
			last[1], lastCost = p[1], merged
		} else {
			blocks, lastCost = append(blocks, p), own
		}
	}
	out = binary.AppendUvarint(out, uint64(len(body)))
	out = binary.AppendUvarint(out, uint64(len(blocks)))
	enc, _, _ := codecs()
	for _, b := range blocks {
		raw := body[b[0]:b[1]]
		coded := enc.EncodeAll(raw, nil)
		if len(coded) < len(raw) {
			out = append(out, blockZstd)
			out = binary.AppendUvarint(out, uint64(len(raw)))
			out = binary.AppendUvarint(out, uint64(len(coded)))
			out = append(out, coded...)
		} else {
			out = append(out, blockStored)
			out = binary.AppendUvarint(out, uint64(len(raw)))
			out = append(out, raw...)
		}
	}
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, castagnoli))
}

// pieces splits [0, n) at the cuts into non-empty ranges.
func pieces(n int, cuts []int) [][2]int {
	var out [][2]int
	start := 0
	for _, c := range append(cuts, n) {
		if c > start && c <= n {
			out = append(out, [2]int{start, c})
			start = c
		}
	}
	return out
}

// readBlocks decodes the blocks after the file header into the body, never
// holding more than max bytes of it. The body grows block by block as blocks
// decode (not to the length the header claims at once), and its checksum is
// updated as it grows, so a corrupt file fails at the first block that does
// not decode, having allocated what came before.
func readBlocks(in []byte, max int) ([]byte, error) {
	r := &reader{b: in}
	claimed := r.uvarint("body length")
	if r.err == nil && claimed > uint64(max) {
		return nil, fmt.Errorf("the body claims %d bytes, more than the %d allowed", claimed, max)
	}
	size := int(claimed)
	nblocks := r.count("block count", r.left()/2)
	if r.err != nil {
		return nil, r.err
	}
	_, dec, err := codecs()
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	var body []byte
	var crc uint32
	for i := 0; i < nblocks; i++ {
		kind := r.u8("block kind")
		n := r.count("block length", size-len(body))
		if kind == blockStored && r.err == nil && n > r.left() {
			r.fail("stored block of %d bytes, %d left", n, r.left())
		}
		var coded []byte
		if kind == blockZstd {
			coded = r.bytes("zstd frame", r.count("zstd frame length", r.left()))
		}
		if r.err != nil {
			return nil, fmt.Errorf("block %d: %w", i, r.err)
		}
		body = slices.Grow(body, n)
		start := len(body)
		switch kind {
		case blockStored:
			body = append(body, r.bytes("block", n)...)
		case blockZstd:
			// With the decoder's cap limit, DecodeAll writes at most n bytes, into
			// body's spare capacity.
			got, err := dec.DecodeAll(coded, body[len(body):len(body):len(body)+n])
			if err != nil {
				return nil, fmt.Errorf("block %d: zstd: %w", i, err)
			}
			if len(got) != n {
				return nil, fmt.Errorf("block %d: decodes to %d bytes, not the %d it declares", i, len(got), n)
			}
			body = append(body, got...) // got aliases body's spare capacity: this only extends it
		default:
			return nil, fmt.Errorf("block %d: unknown kind %d", i, kind)
		}
		crc = crc32.Update(crc, castagnoli, body[start:])
	}
	if len(body) != size {
		return nil, fmt.Errorf("the blocks hold %d bytes, the body is %d", len(body), size)
	}
	sum := r.bytes("checksum", 4)
	if r.err != nil {
		return nil, r.err
	}
	if r.left() != 0 {
		return nil, fmt.Errorf("%d bytes after the checksum", r.left())
	}
	if binary.LittleEndian.Uint32(sum) != crc {
		return nil, fmt.Errorf("checksum mismatch: the file is corrupt")
	}
	return body, nil
}
