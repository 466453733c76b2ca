package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// IDX magic numbers: two zero bytes, the element type (0x08: unsigned byte) and the
// number of dimensions.
const (
	idxImagesMagic = 0x00000803
	idxLabelsMagic = 0x00000801
)

// Limits that keep a hostile or corrupt header from asking for absurd shapes.
const (
	maxIDXSide = 1 << 12 // rows and cols of one image
	// maxInflateRatio bounds how much DEFLATE can expand its input (about 1032:1),
	// so a gzip input of n bytes never makes the parser reserve more than
	// n*maxInflateRatio bytes up front, whatever its header claims.
	maxInflateRatio = 1032
	gzipSlack       = 64 << 10
)

// Images is a parsed IDX image file: N images of Rows×Cols unsigned bytes, row-major.
type Images struct {
	N, Rows, Cols int
	Pixels        []byte // N*Rows*Cols bytes
}

// ParseIDXImages parses an IDX image file (magic 0x00000803), raw or gzip-compressed
// (detected by the gzip magic bytes). name is used in error messages only. For a raw
// input, Pixels aliases b.
func ParseIDXImages(name string, b []byte) (*Images, error) {
	dims, body, err := parseIDX(name, b, 3)
	if err != nil {
		return nil, err
	}
	return &Images{N: dims[0], Rows: dims[1], Cols: dims[2], Pixels: body}, nil
}

// ParseIDXLabels parses an IDX label file (magic 0x00000801), raw or gzip-compressed.
// name is used in error messages only. For a raw input, the result aliases b.
func ParseIDXLabels(name string, b []byte) ([]byte, error) {
	_, body, err := parseIDX(name, b, 1)
	return body, err
}

func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

// parseIDX parses an IDX file of unsigned bytes with ndim dimensions (1 or 3).
func parseIDX(name string, b []byte, ndim int) (dims [3]int, body []byte, err error) {
	hlen := 4 + 4*ndim
	var hdr []byte
	var zr *gzip.Reader
	if isGzip(b) {
		zr, err = gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return dims, nil, fmt.Errorf("%s: not a valid gzip file: %w", name, err)
		}
		hdr = make([]byte, hlen)
		got, err := io.ReadFull(zr, hdr)
		if err != nil {
			if isEOF(err) {
				if got >= 4 { // a short file with a wrong magic is reported as such
					if err := checkMagic(name, hdr[:4], ndim); err != nil {
						return dims, nil, err
					}
				}
				return dims, nil, fmt.Errorf("%s: truncated: %d bytes, an IDX %s header needs %d", name, got, what(ndim), hlen)
			}
			return dims, nil, fmt.Errorf("%s: corrupt gzip data: %w", name, err)
		}
	} else {
		if len(b) < hlen {
			if len(b) >= 4 {
				if err := checkMagic(name, b[:4], ndim); err != nil {
					return dims, nil, err
				}
			}
			return dims, nil, fmt.Errorf("%s: truncated: %d bytes, an IDX %s header needs %d", name, len(b), what(ndim), hlen)
		}
		hdr = b[:hlen]
	}
	if err := checkMagic(name, hdr[:4], ndim); err != nil {
		return dims, nil, err
	}
	n := uint64(binary.BigEndian.Uint32(hdr[4:8]))
	item := uint64(1) // bytes per item
	dims[0] = int(n)
	if ndim == 3 {
		rows := binary.BigEndian.Uint32(hdr[8:12])
		cols := binary.BigEndian.Uint32(hdr[12:16])
		if rows < 1 || cols < 1 || rows > maxIDXSide || cols > maxIDXSide {
			return dims, nil, fmt.Errorf("%s: bad dimensions: header says images of %dx%d, each side must be 1..%d", name, rows, cols, maxIDXSide)
		}
		dims[1], dims[2] = int(rows), int(cols)
		item = uint64(rows) * uint64(cols)
	}
	want := n * item // at most 2^32 * 2^24: no overflow
	if want > math.MaxInt {
		return dims, nil, fmt.Errorf("%s: header says %d %s, too large for this platform", name, n, what(ndim))
	}

	if zr == nil {
		have := uint64(len(b) - hlen)
		if have < want {
			return dims, nil, truncated(name, ndim, dims, n, have, "")
		}
		if have > want {
			return dims, nil, fmt.Errorf("%s: %d bytes of trailing data after the %d %s the header declares", name, have-want, n, what(ndim))
		}
		return dims, b[hlen:], nil
	}

	// gzip: reserve what the header declares only when the gzip trailer's size
	// (ISIZE, the uncompressed size mod 2^32) agrees and DEFLATE could expand the
	// input that far; otherwise start small. Either way, grow only as data arrives.
	reserve := min(want, uint64(len(b))*4+gzipSlack)
	if len(b) >= 18 && binary.LittleEndian.Uint32(b[len(b)-4:]) == uint32(want+uint64(hlen)) {
		reserve = min(want, uint64(len(b))*maxInflateRatio+gzipSlack)
	}
	body = make([]byte, 0, reserve)
	for uint64(len(body)) < want {
		if len(body) == cap(body) {
			grown := make([]byte, len(body), min(want, uint64(cap(body))*2+gzipSlack))
			copy(grown, body)
			body = grown
		}
		k, err := zr.Read(body[len(body):cap(body)])
		body = body[:len(body)+k]
		if err == io.EOF {
			break
		}
		if err != nil {
			if isEOF(err) {
				return dims, nil, truncated(name, ndim, dims, n, uint64(len(body)), " (the gzip stream ends early)")
			}
			return dims, nil, fmt.Errorf("%s: corrupt gzip data after %d bytes: %w", name, hlen+len(body), err)
		}
	}
	if uint64(len(body)) < want {
		return dims, nil, truncated(name, ndim, dims, n, uint64(len(body)), "")
	}
	// Read on to the end: detects trailing data and makes gzip verify its checksum.
	var one [1]byte
	k, err := io.ReadFull(zr, one[:])
	if k > 0 {
		return dims, nil, fmt.Errorf("%s: trailing data after the %d %s the header declares", name, n, what(ndim))
	}
	if err != io.EOF {
		return dims, nil, fmt.Errorf("%s: corrupt gzip data at its end: %w", name, err)
	}
	return dims, body, nil
}

func isEOF(err error) bool { return err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) }

func what(ndim int) string {
	if ndim == 3 {
		return "images"
	}
	return "labels"
}

func truncated(name string, ndim int, dims [3]int, n, have uint64, note string) error {
	if ndim == 1 {
		return fmt.Errorf("%s: truncated: header says %d labels, file holds %d%s", name, n, have, note)
	}
	item := uint64(dims[1] * dims[2])
	partial := ""
	if have%item != 0 {
		partial = fmt.Sprintf(" and %d bytes of the next", have%item)
	}
	return fmt.Errorf("%s: truncated: header says %d images of %dx%d, file holds %d%s%s", name, n, dims[1], dims[2], have/item, partial, note)
}

func checkMagic(name string, m []byte, ndim int) error {
	magic := binary.BigEndian.Uint32(m)
	want := uint32(idxImagesMagic)
	if ndim == 1 {
		want = idxLabelsMagic
	}
	if magic == want {
		return nil
	}
	var why string
	switch {
	case m[0] != 0 || m[1] != 0:
		why = "not an IDX file"
	case m[2] != 0x08:
		why = fmt.Sprintf("element type 0x%02x is not supported, only unsigned bytes (0x08)", m[2])
	case m[3] == 1:
		why = "this is an IDX label file (1 dimension)"
	case m[3] == 3:
		why = "this is an IDX image file (3 dimensions)"
	default:
		why = fmt.Sprintf("an IDX file with %d dimensions", m[3])
	}
	return fmt.Errorf("%s: bad magic 0x%08x: %s; expected an IDX %s file (magic 0x%08x)", name, magic, why, what(ndim), want)
}
