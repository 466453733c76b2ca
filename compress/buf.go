package compress

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// writer appends the body's primitive fields. Cuts mark where one stream ends
// and another (of different statistics) starts: the entropy coder may code
// the pieces between them apart (see blocks.go).
type writer struct {
	b    []byte
	cuts []int
}

func (w *writer) cut() {
	if n := len(w.cuts); n == 0 || w.cuts[n-1] != len(w.b) {
		w.cuts = append(w.cuts, len(w.b))
	}
}

// embed appends what sub wrote, with its cuts.
func (w *writer) embed(sub *writer) {
	for _, c := range sub.cuts {
		w.cuts = append(w.cuts, len(w.b)+c)
	}
	w.raw(sub.b)
}

func (w *writer) u8(v byte)        { w.b = append(w.b, v) }
func (w *writer) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *writer) raw(p []byte)     { w.b = append(w.b, p...) }
func (w *writer) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// reader reads the body's primitive fields. The first failure sticks: later
// reads return zero values, so decoders check r.err once per step.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) u8(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.left() < 1 {
		r.fail("%s: the body ends early", what)
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("%s: bad or truncated varint", what)
		return 0
	}
	r.off += n
	return v
}

// varint reads a zig-zag signed varint, as binary.Varint encodes it.
func (r *reader) varint(what string) int64 {
	u := r.uvarint(what)
	return int64(u>>1) ^ -int64(u&1)
}

// count reads a uvarint that must not exceed max (which callers derive from the
// bytes left, so nothing claimed is allocated before it is backed by input).
func (r *reader) count(what string, max int) int {
	v := r.uvarint(what)
	if r.err == nil && v > uint64(max) {
		r.fail("%s: %d is more than the %d the file can hold", what, v, max)
		return 0
	}
	return int(v)
}

func (r *reader) bytes(what string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > r.left() {
		r.fail("%s: needs %d bytes, %d left", what, n, r.left())
		return nil
	}
	r.off += n
	return r.b[r.off-n : r.off : r.off]
}

func (r *reader) str(what string) string {
	n := r.count(what+" length", r.left())
	s := string(r.bytes(what, n))
	if r.err == nil && !utf8.ValidString(s) {
		r.fail("%s %q is not valid UTF-8", what, s)
	}
	return s
}
