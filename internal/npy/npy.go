// Package npy reads and writes NumPy's .npy files and .npz archives: the
// format tests trade arrays in with PyTorch fixtures and with onnxruntime
// (tools/ort/run.js). It handles what those write: little-endian float32,
// float64, int8, uint8, int32, int64 and bool arrays in C order.
//
//	a := &npy.Array{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}
//	err := npy.WriteFile("x.npy", a)
package npy

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strconv"
	"strings"
)

// Array is an n-dimensional array. Data is one of []float32, []float64,
// []int8, []uint8, []int32, []int64 or []bool, with Len() elements.
type Array struct {
	Shape []int // empty for a scalar
	Data  any
}

// Len is the number of elements the shape holds.
func (a *Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// DType is NumPy's name for the element type ("float32"), or "" when Data
// is not a supported slice.
func (a *Array) DType() string {
	if k, ok := kindOf(a.Data); ok {
		return k.name
	}
	return ""
}

type kind struct {
	descr string // the header's descr
	name  string
	size  int
}

var kinds = []kind{
	{"<f4", "float32", 4}, {"<f8", "float64", 8}, {"|i1", "int8", 1}, {"|u1", "uint8", 1},
	{"<i4", "int32", 4}, {"<i8", "int64", 8}, {"|b1", "bool", 1},
}

func kindOf(data any) (kind, bool) {
	i := -1
	switch data.(type) {
	case []float32:
		i = 0
	case []float64:
		i = 1
	case []int8:
		i = 2
	case []uint8:
		i = 3
	case []int32:
		i = 4
	case []int64:
		i = 5
	case []bool:
		i = 6
	}
	if i < 0 {
		return kind{}, false
	}
	return kinds[i], true
}

func dataLen(data any) int {
	switch d := data.(type) {
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []int8:
		return len(d)
	case []uint8:
		return len(d)
	case []int32:
		return len(d)
	case []int64:
		return len(d)
	case []bool:
		return len(d)
	}
	return -1
}

var magic = []byte("\x93NUMPY")

// Write writes a as a version 1.0 .npy file.
func Write(w io.Writer, a *Array) error {
	k, ok := kindOf(a.Data)
	if !ok {
		return fmt.Errorf("npy: cannot write %T: want []float32, []float64, []int8, []uint8, []int32, []int64 or []bool", a.Data)
	}
	for _, d := range a.Shape {
		if d < 0 {
			return fmt.Errorf("npy: negative dimension in shape %v", a.Shape)
		}
	}
	if n := dataLen(a.Data); n != a.Len() {
		return fmt.Errorf("npy: shape %v holds %d elements, data has %d", a.Shape, a.Len(), n)
	}
	dims := make([]string, len(a.Shape))
	for i, d := range a.Shape {
		dims[i] = strconv.Itoa(d)
	}
	shape := strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", k.descr, shape)
	// NumPy pads the header with spaces and a newline so the data starts at
	// a multiple of 64 bytes.
	total := len(magic) + 2 + 2 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	if len(header) > math.MaxUint16 {
		return fmt.Errorf("npy: shape %v is too long for a version 1.0 header", a.Shape)
	}
	bw := bufio.NewWriter(w)
	bw.Write(magic)
	bw.Write([]byte{1, 0})
	binary.Write(bw, binary.LittleEndian, uint16(len(header)))
	bw.WriteString(header)
	if err := binary.Write(bw, binary.LittleEndian, a.Data); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return bw.Flush()
}

// WriteFile writes a to path.
func WriteFile(path string, a *Array) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, a); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// ReadFile reads a .npy file.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := Read(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// maxHeader bounds the header a reader accepts; NumPy's own limit is 10000.
const maxHeader = 1 << 16

// Read reads one .npy array (format version 1, 2 or 3).
func Read(r io.Reader) (*Array, error) {
	pre := make([]byte, len(magic)+2)
	if _, err := io.ReadFull(r, pre); err != nil {
		return nil, fmt.Errorf("npy: reading the magic: %w", err)
	}
	if !bytes.Equal(pre[:len(magic)], magic) {
		return nil, errors.New("npy: not a .npy file (no \\x93NUMPY magic)")
	}
	var n int
	switch major := pre[len(magic)]; major {
	case 1:
		var l uint16
		if err := binary.Read(r, binary.LittleEndian, &l); err != nil {
			return nil, fmt.Errorf("npy: reading the header length: %w", err)
		}
		n = int(l)
	case 2, 3:
		var l uint32
		if err := binary.Read(r, binary.LittleEndian, &l); err != nil {
			return nil, fmt.Errorf("npy: reading the header length: %w", err)
		}
		if l > maxHeader {
			return nil, fmt.Errorf("npy: header of %d bytes (the limit is %d)", l, maxHeader)
		}
		n = int(l)
	default:
		return nil, fmt.Errorf("npy: format version %d.%d (want 1, 2 or 3)", major, pre[len(magic)+1])
	}
	hb := make([]byte, n)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, fmt.Errorf("npy: reading the %d-byte header: %w", n, err)
	}
	h, err := parseHeader(string(hb))
	if err != nil {
		return nil, fmt.Errorf("npy: header %q: %w", strings.TrimSpace(string(hb)), err)
	}
	var k kind
	for _, c := range kinds {
		if c.descr == h.descr || (c.size == 1 && h.descr[1:] == c.descr[1:] && h.descr[0] != '>') {
			k = c
		}
	}
	if k.name == "" {
		return nil, fmt.Errorf("npy: dtype %q is not supported (want little-endian float32, float64, int8, uint8, int32, int64 or bool)", h.descr)
	}
	if h.fortran {
		return nil, errors.New("npy: Fortran-order arrays are not supported (save with np.ascontiguousarray)")
	}
	a := &Array{Shape: h.shape}
	count := 1
	for _, d := range h.shape {
		if d > 0 && count > math.MaxInt/k.size/d {
			return nil, fmt.Errorf("npy: shape %v is too large", h.shape)
		}
		count *= d
	}
	// ReadAll grows with the data actually there, so a header claiming a
	// huge shape costs nothing until the bytes arrive.
	raw, err := io.ReadAll(io.LimitReader(r, int64(count*k.size)))
	if err != nil {
		return nil, fmt.Errorf("npy: reading the data: %w", err)
	}
	if len(raw) != count*k.size {
		return nil, fmt.Errorf("npy: shape %v of %s needs %d bytes of data, the file has %d", h.shape, k.name, count*k.size, len(raw))
	}
	a.Data = decode(k.name, raw, count)
	return a, nil
}

func decode(name string, raw []byte, n int) any {
	le := binary.LittleEndian
	switch name {
	case "float32":
		d := make([]float32, n)
		for i := range d {
			d[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
		return d
	case "float64":
		d := make([]float64, n)
		for i := range d {
			d[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
		return d
	case "int8":
		d := make([]int8, n)
		for i := range d {
			d[i] = int8(raw[i])
		}
		return d
	case "uint8":
		return raw
	case "int32":
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(le.Uint32(raw[4*i:]))
		}
		return d
	case "int64":
		d := make([]int64, n)
		for i := range d {
			d[i] = int64(le.Uint64(raw[8*i:]))
		}
		return d
	default: // bool
		d := make([]bool, n)
		for i := range d {
			d[i] = raw[i] != 0
		}
		return d
	}
}

type header struct {
	descr   string
	fortran bool
	shape   []int
}

// parseHeader reads the Python dict literal NumPy writes, such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
func parseHeader(s string) (header, error) {
	var h header
	p := &lexer{s: strings.TrimSpace(s)}
	if !p.eat("{") {
		return h, errors.New("want a dict")
	}
	seen := map[string]bool{}
	for !p.eat("}") {
		key, ok := p.str()
		if !ok || !p.eat(":") {
			return h, fmt.Errorf("want 'key': value at offset %d", p.i)
		}
		if seen[key] {
			return h, fmt.Errorf("key %q twice", key)
		}
		seen[key] = true
		switch key {
		case "descr":
			if h.descr, ok = p.str(); !ok || len(h.descr) < 2 {
				return h, errors.New("descr: want a dtype string such as '<f4'")
			}
		case "fortran_order":
			switch {
			case p.eat("True"):
				h.fortran = true
			case p.eat("False"):
			default:
				return h, errors.New("fortran_order: want True or False")
			}
		case "shape":
			if h.shape, ok = p.tuple(); !ok {
				return h, errors.New("shape: want a tuple of non-negative integers")
			}
		default:
			return h, fmt.Errorf("unknown key %q", key)
		}
		if !p.eat(",") && !p.peek("}") {
			return h, fmt.Errorf("want , or } at offset %d", p.i)
		}
	}
	if p.skip(); p.i != len(p.s) {
		return h, fmt.Errorf("text after the dict at offset %d", p.i)
	}
	if !seen["descr"] || !seen["fortran_order"] || !seen["shape"] {
		return h, errors.New("want the keys descr, fortran_order and shape")
	}
	return h, nil
}

type lexer struct {
	s string
	i int
}

func (l *lexer) skip() {
	for l.i < len(l.s) && (l.s[l.i] == ' ' || l.s[l.i] == '\n') {
		l.i++
	}
}

func (l *lexer) peek(tok string) bool {
	l.skip()
	return strings.HasPrefix(l.s[l.i:], tok)
}

func (l *lexer) eat(tok string) bool {
	if l.peek(tok) {
		l.i += len(tok)
		return true
	}
	return false
}

func (l *lexer) str() (string, bool) {
	l.skip()
	if l.i >= len(l.s) || (l.s[l.i] != '\'' && l.s[l.i] != '"') {
		return "", false
	}
	q := l.s[l.i]
	end := strings.IndexByte(l.s[l.i+1:], q)
	if end < 0 {
		return "", false
	}
	v := l.s[l.i+1 : l.i+1+end]
	l.i += end + 2
	return v, true
}

func (l *lexer) tuple() ([]int, bool) {
	if !l.eat("(") {
		return nil, false
	}
	dims := []int{}
	for !l.eat(")") {
		l.skip()
		j := l.i
		for j < len(l.s) && l.s[j] >= '0' && l.s[j] <= '9' {
			j++
		}
		d, err := strconv.Atoi(l.s[l.i:j])
		if err != nil || d < 0 {
			return nil, false
		}
		dims = append(dims, d)
		l.i = j
		if !l.eat(",") && !l.peek(")") {
			return nil, false
		}
	}
	return dims, true
}

// ReadNPZ reads every array of an .npz archive (np.savez or
// np.savez_compressed), keyed by name without the ".npy".
func ReadNPZ(file string) (map[string]*Array, error) {
	z, err := zip.OpenReader(file)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	out := map[string]*Array{}
	for _, f := range z.File {
		name, ok := strings.CutSuffix(f.Name, ".npy")
		if !ok || path.Base(name) != name {
			return nil, fmt.Errorf("%s: entry %q is not an array (want NAME.npy)", file, f.Name)
		}
		r, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, f.Name, err)
		}
		a, err := Read(bufio.NewReader(r))
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, f.Name, err)
		}
		out[name] = a
	}
	return out, nil
}
