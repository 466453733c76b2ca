package checkpoint

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
)

// Encode writes f as a safetensors file. The bytes depend only on the tensors (as a set:
// their order in f.Tensors does not matter) and the metadata:
//
//   - the header is compact JSON: "__metadata__" first (omitted when empty) with its keys
//     sorted, then one entry per tensor sorted by name, each with its fields in the order
//     dtype, shape, data_offsets (the order the reference implementation writes);
//   - strings escape only '"', '\\' and control characters, as serde_json does;
//   - the header is padded with spaces to a multiple of 8 bytes;
//   - the data of the tensors follows in name order, contiguous, without gaps.
//
// It first checks f with File.Validate and writes nothing if that fails.
func Encode(w io.Writer, f *File) error {
	hdr, order, err := encodeHeader(f)
	if err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	for _, t := range order {
		if len(t.Data) == 0 {
			continue
		}
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	return nil
}

// EncodedSize is the length of what Encode writes, without building it.
func EncodedSize(f *File) (int, error) {
	hdr, order, err := encodeHeader(f)
	if err != nil {
		return 0, err
	}
	return encodedSize(hdr, order), nil
}

func encodedSize(hdr []byte, order []*Tensor) int {
	n := len(hdr)
	for _, t := range order {
		n += len(t.Data)
	}
	return n
}

// Marshal returns the bytes Encode writes.
func Marshal(f *File) ([]byte, error) {
	hdr, order, err := encodeHeader(f)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, encodedSize(hdr, order))
	out = append(out, hdr...)
	for _, t := range order {
		out = append(out, t.Data...)
	}
	return out, nil
}

// encodeHeader validates f and returns the 8-byte length prefix plus the padded JSON
// header, and the tensors in the order their data follows.
func encodeHeader(f *File) ([]byte, []*Tensor, error) {
	if err := f.Validate(); err != nil {
		return nil, nil, err
	}
	order := make([]*Tensor, len(f.Tensors))
	for i := range f.Tensors {
		order[i] = &f.Tensors[i]
	}
	slices.SortFunc(order, func(a, b *Tensor) int { return cmp.Compare(a.Name, b.Name) })

	size := 16 + 64*len(order)
	for k, v := range f.Metadata {
		size += len(k) + len(v) + 8
	}
	for _, t := range order {
		size += len(t.Name) + 8*len(t.Shape)
	}
	b := make([]byte, 8, size)
	b = append(b, '{')
	if len(f.Metadata) > 0 {
		b = append(b, `"__metadata__":{`...)
		for i, k := range slices.Sorted(maps.Keys(f.Metadata)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, f.Metadata[k])
		}
		b = append(b, '}')
	}
	var off uint64
	for i, t := range order {
		if i > 0 || len(f.Metadata) > 0 {
			b = append(b, ',')
		}
		b = appendString(b, t.Name)
		b = append(b, `:{"dtype":"`...)
		b = append(b, t.DType...)
		b = append(b, `","shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendUint(b, off, 10)
		b = append(b, ',')
		off += uint64(len(t.Data))
		b = strconv.AppendUint(b, off, 10)
		b = append(b, "]}"...)
	}
	b = append(b, '}')
	for (len(b)-8)%8 != 0 {
		b = append(b, ' ')
	}
	if len(b)-8 > MaxHeaderSize {
		return nil, nil, fmt.Errorf("checkpoint: header of %d bytes exceeds the limit of %d bytes", len(b)-8, MaxHeaderSize)
	}
	binary.LittleEndian.PutUint64(b, uint64(len(b)-8))
	return b, order, nil
}

// appendString appends s as a JSON string, escaping only what JSON requires (s is valid
// UTF-8, see Validate).
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// WriteFile writes f to path atomically (WriteAtomic), with mode 0644, and
// returns the hex sha256 of the bytes written.
func WriteFile(path string, f *File) (sha256hex string, err error) {
	hdr, order, err := encodeHeader(f)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	err = WriteAtomic(path, func(w io.Writer) error {
		w = io.MultiWriter(w, h)
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		for _, t := range order {
			if _, err := w.Write(t.Data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// WriteBytes writes b to path atomically (WriteAtomic).
func WriteBytes(path string, b []byte) error {
	return WriteAtomic(path, func(w io.Writer) error { _, err := w.Write(b); return err })
}

// WriteAtomic writes a file through write into a temporary file in the same
// folder, fsyncs it, renames it over path and fsyncs the folder: path holds
// the old content or the complete new one, never a part, even across a crash.
// The file gets mode 0644. Errors name path, not the temporary file.
func WriteAtomic(path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	renamed := false
	defer func() {
		if err != nil && !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("writing %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		// The file is in place; only its durability across a crash is in doubt.
		return fmt.Errorf("wrote %s but could not sync its folder: %w", path, err)
	}
	return nil
}

// syncDir fsyncs a directory so a rename in it is durable (not possible on Windows).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Digest returns the hex sha256 of the regular file at path, reading it as a
// stream (never more than its size when it opened: a file still growing, or
// /dev/zero, is not hashed forever).
func Digest(path string) (string, error) {
	fh, size, err := OpenRegular(path)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(fh, size)); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
