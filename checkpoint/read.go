package checkpoint

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// MaxHeaderSize is the largest header Read accepts, in bytes (the limit of the reference
// implementation).
const MaxHeaderSize = 100_000_000

// ErrMalformed is matched (with errors.Is) by every error Read and ReadFile return because
// the bytes are not a valid safetensors file, as opposed to I/O errors.
var ErrMalformed = errors.New("checkpoint: malformed safetensors file")

// malformedError says what is wrong with a file; it matches ErrMalformed.
type malformedError struct {
	path string
	msg  string
}

func (e *malformedError) Error() string {
	if e.path != "" {
		return "checkpoint: " + e.path + ": " + e.msg
	}
	return "checkpoint: " + e.msg
}

func (e *malformedError) Is(target error) bool { return target == ErrMalformed }

func malformed(format string, args ...any) error {
	return &malformedError{msg: fmt.Sprintf(format, args...)}
}

// Read parses a whole safetensors file of the given size from r (size must be the number
// of bytes r holds). It checks the file strictly (see the package documentation): the
// header length against the file before reading the header, and the whole header against
// the file before reading the data buffer, so it never allocates what a header merely
// claims; its memory is the file's size plus parsing overhead linear in the header size.
// The tensors are returned sorted by name, their Data slices sharing one buffer, and
// Metadata is never nil.
func Read(r io.ReaderAt, size int64) (*File, error) {
	f, err := read(r, size)
	if err != nil {
		if _, ok := err.(*malformedError); !ok {
			err = fmt.Errorf("checkpoint: %w", err)
		}
		return nil, err
	}
	return f, nil
}

func read(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, malformed("file is %d bytes, shorter than the 8-byte header length", size)
	}
	var prefix [8]byte
	if err := readAt(r, prefix[:], 0); err != nil {
		return nil, fmt.Errorf("reading the header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	rest := uint64(size - 8)
	if n > MaxHeaderSize || n > rest {
		if what := foreignFormat(prefix[:]); what != "" {
			return nil, malformed("not a safetensors file: %s", what)
		}
	}
	if n > MaxHeaderSize {
		return nil, malformed("header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > rest {
		return nil, malformed("header length %d exceeds the file size (%d bytes, %d after the length)", n, size, rest)
	}
	hb := make([]byte, n)
	if err := readAt(r, hb, 8); err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	h, err := parseHeader(hb)
	if err != nil {
		return nil, err
	}
	bufLen := rest - n
	if err := h.checkLayout(bufLen); err != nil {
		return nil, err
	}
	// bufLen is now known to be exactly what the tensors declare (and <= size).
	data := make([]byte, bufLen)
	if err := readAt(r, data, int64(8+n)); err != nil {
		return nil, fmt.Errorf("reading the data buffer: %w", err)
	}
	f := &File{Metadata: h.meta, Tensors: make([]Tensor, len(h.entries))} // entries are sorted by name
	for i, e := range h.entries {
		f.Tensors[i] = Tensor{Name: e.name, DType: e.dtype, Shape: e.shape, Data: data[e.begin:e.end:e.end]}
	}
	return f, nil
}

// ReadFile reads and checks the safetensors file at path.
func ReadFile(path string) (*File, error) {
	fh, size, err := OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer fh.Close()
	f, err := read(fh, size)
	if err != nil {
		if me, ok := err.(*malformedError); ok {
			me.path = path
			return nil, me
		}
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return f, nil
}

// checkLayout checks each entry's offsets against its shape and the data buffer, and that
// the tensors tile the buffer exactly: no overlap, no gap, nothing left over.
func (h *header) checkLayout(bufLen uint64) error {
	for _, e := range h.entries {
		switch {
		case e.begin > e.end:
			return malformed("tensor %q: data_offsets [%d, %d] begin after they end", e.name, e.begin, e.end)
		case e.end > bufLen:
			return malformed("tensor %q: data_offsets [%d, %d] run past the end of the %d-byte data buffer",
				e.name, e.begin, e.end, bufLen)
		case e.end-e.begin != e.nbytes:
			return malformed("tensor %q: data_offsets [%d, %d] but shape %v of %s needs %d bytes",
				e.name, e.begin, e.end, e.shape, e.dtype, e.nbytes)
		}
	}
	order := make([]*headerEntry, len(h.entries))
	for i := range h.entries {
		order[i] = &h.entries[i]
	}
	slices.SortFunc(order, func(a, b *headerEntry) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.end, b.end), cmp.Compare(a.name, b.name))
	})
	var pos uint64
	var prev *headerEntry
	for _, e := range order {
		if e.begin < pos {
			return malformed("tensor %q: data_offsets [%d, %d] overlap tensor %q at [%d, %d]",
				e.name, e.begin, e.end, prev.name, prev.begin, prev.end)
		}
		if e.begin > pos {
			return malformed("gap of %d bytes in the data buffer at [%d, %d] before tensor %q; the tensors must tile the buffer",
				e.begin-pos, pos, e.begin, e.name)
		}
		pos, prev = e.end, e
	}
	if pos != bufLen {
		return malformed("the tensors cover %d bytes but the data buffer holds %d (%d trailing bytes)",
			pos, bufLen, bufLen-pos)
	}
	return nil
}

// readAt fills p from r at off; a short read is io.ErrUnexpectedEOF.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
