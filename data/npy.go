package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// NPY is a NumPy array as numpy.save writes it: elements of one numeric type,
// little-endian, in C (row-major) order. ParseNPY converts big-endian and
// Fortran-ordered files to that form.
type NPY struct {
	Kind  byte   // 'f' float, 'i' signed integer, 'u' unsigned integer, 'b' bool, 'c' complex
	Size  int    // bytes per element
	Shape []int  // empty for a 0-d array (one element)
	Data  []byte // Len()*Size bytes
}

// Len returns the number of elements: the product of the shape.
func (a *NPY) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// Dtype returns numpy's name of the element type: float32, uint8, int64, ...
func (a *NPY) Dtype() string {
	switch a.Kind {
	case 'f':
		return fmt.Sprintf("float%d", 8*a.Size)
	case 'i':
		return fmt.Sprintf("int%d", 8*a.Size)
	case 'u':
		return fmt.Sprintf("uint%d", 8*a.Size)
	case 'b':
		return "bool"
	case 'c':
		return fmt.Sprintf("complex%d", 8*a.Size)
	}
	return fmt.Sprintf("%c%d", a.Kind, a.Size)
}

// descr is numpy's type string for the element type, little-endian.
func (a *NPY) descr() string {
	order := byte('<')
	if a.Size == 1 {
		order = '|'
	}
	return fmt.Sprintf("%c%c%d", order, a.Kind, a.Size)
}

// npyMagic starts every .npy file.
const npyMagic = "\x93NUMPY"

// Limits that keep a hostile or corrupt header from asking for absurd work: numpy
// itself writes headers of about a hundred bytes for plain arrays, and its arrays
// have at most 64 dimensions.
const (
	maxNPYHeader = 1 << 16
	maxNPYDims   = 64
	maxNPYDepth  = 8 // nesting of tuples, lists and dicts in the header
)

// numeric element types numpy stores as raw bytes, by kind: the valid sizes.
var npySizes = map[byte][]int{
	'b': {1},
	'i': {1, 2, 4, 8},
	'u': {1, 2, 4, 8},
	'f': {2, 4, 8},
	'c': {8, 16},
}

// ParseNPY parses a .npy file (format versions 1.0, 2.0 and 3.0). name is used in
// error messages only. Little-endian C-ordered data is returned in place (Data
// aliases b); big-endian data is byte-swapped and Fortran-ordered data transposed
// into a copy. Object arrays (pickles), structured and non-numeric dtypes are
// refused, and so is any byte after the array.
func ParseNPY(name string, b []byte) (*NPY, error) {
	a, start, swap, fortran, err := parseNPYHeader(name, b)
	if err != nil {
		return nil, err
	}
	want := uint64(a.Len()) * uint64(a.Size) // parseNPYHeader bounds it by len(b)
	have := uint64(len(b) - start)
	if have < want {
		return nil, fmt.Errorf("%s: truncated: the header declares %s %s (%d bytes of data), the file holds %d", name, shapeString(a.Shape), a.Dtype(), want, have)
	}
	if have > want {
		return nil, fmt.Errorf("%s: %d bytes of trailing data after the %s %s array the header declares", name, have-want, shapeString(a.Shape), a.Dtype())
	}
	a.Data = b[start:]
	if swap {
		a.Data = swapBytes(a.Data, a.Size)
	}
	if fortran {
		a.Data = fortranToC(a.Data, a.Shape, a.Size)
	}
	return a, nil
}

// ReadNPYHeader reads only the header of the .npy file at path: the dtype and
// shape, with no Data. Cheap on any file size.
func ReadNPYHeader(path string) (*NPY, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 12+maxNPYHeader)
	n, err := io.ReadFull(f, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	a, start, _, _, err := parseNPYHeaderSized(path, b[:n], st.Size())
	if err != nil {
		return nil, err
	}
	if want, have := uint64(a.Len())*uint64(a.Size), uint64(st.Size())-uint64(start); have != want {
		return nil, fmt.Errorf("%s: the header declares %s %s (%d bytes of data), the file holds %d", path, shapeString(a.Shape), a.Dtype(), want, have)
	}
	return a, nil
}

func parseNPYHeader(name string, b []byte) (a *NPY, start int, swap, fortran bool, err error) {
	return parseNPYHeaderSized(name, b, int64(len(b)))
}

// parseNPYHeaderSized parses the header at the start of b, of a file of size
// bytes: the element type and shape, where the data starts, and whether the data
// needs swapping (big-endian) or transposing (Fortran order).
func parseNPYHeaderSized(name string, b []byte, size int64) (a *NPY, start int, swap, fortran bool, err error) {
	fail := func(format string, args ...any) (*NPY, int, bool, bool, error) {
		return nil, 0, false, false, fmt.Errorf("%s: "+format, append([]any{name}, args...)...)
	}
	if !bytes.HasPrefix(b, []byte(npyMagic)) {
		switch {
		case len(b) == 0:
			return fail("empty file, not a .npy file: write it with numpy.save")
		case bytes.HasPrefix(b, []byte("PK\x03\x04")):
			return fail("a zip archive (an .npz file?), not a .npy file: save each array on its own with numpy.save")
		case len(b) < len(npyMagic) && bytes.HasPrefix([]byte(npyMagic), b):
			return fail("truncated: %d bytes, a .npy file starts with 10", len(b))
		}
		return fail("not a NumPy .npy file (it does not start with \\x93NUMPY): write it with numpy.save")
	}
	if len(b) < 10 {
		return fail("truncated: %d bytes, a .npy header needs at least 10", len(b))
	}
	major, minor := b[6], b[7]
	var hlen int
	switch {
	case major == 1 && minor == 0:
		hlen, start = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case (major == 2 || major == 3) && minor == 0:
		if len(b) < 12 {
			return fail("truncated: %d bytes, a version %d.0 .npy header needs at least 12", len(b), major)
		}
		h := binary.LittleEndian.Uint32(b[8:12])
		if h > maxNPYHeader {
			return fail("header of %d bytes is too large (at most %d): plain numeric arrays have short headers", h, maxNPYHeader)
		}
		hlen, start = int(h), 12
	default:
		return fail(".npy format version %d.%d is not supported (1.0, 2.0 and 3.0 are)", major, minor)
	}
	if len(b) < start+hlen {
		return fail("truncated: the header is %d bytes, the file holds %d after the preamble", hlen, len(b)-start)
	}
	text := b[start : start+hlen]
	start += hlen
	if major == 3 && !utf8.Valid(text) {
		return fail("the header is not valid UTF-8")
	}
	p := &pyParser{s: string(text)}
	v, perr := p.parse()
	if perr != nil {
		return fail("bad header %q: %v", clip(string(text), 120), perr)
	}
	dict, ok := v.(map[string]any)
	if !ok {
		return fail("bad header %q: not a dictionary", clip(string(text), 120))
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if _, ok := dict[k]; !ok {
			return fail("the header lacks the key '%s'", k)
		}
	}
	if len(dict) != 3 {
		for k := range dict {
			if k != "descr" && k != "fortran_order" && k != "shape" {
				return fail("the header has an unexpected key '%s' (a .npy header holds descr, fortran_order and shape)", k)
			}
		}
	}

	a = &NPY{}
	descr, ok := dict["descr"].(string)
	if !ok {
		if _, list := dict["descr"].([]any); list {
			return fail("a structured array (a record dtype with named fields): save each field as a plain numeric array")
		}
		return fail("descr must be a type string such as '<f4', got %s", pyDescribe(dict["descr"]))
	}
	order, kind, sz, derr := parseDescr(descr)
	if derr != "" {
		return fail("%s", derr)
	}
	a.Kind, a.Size = kind, sz
	swap = order == '>' && sz > 1

	f, ok := dict["fortran_order"].(bool)
	if !ok {
		return fail("fortran_order must be True or False, got %s", pyDescribe(dict["fortran_order"]))
	}
	fortran = f

	dims, ok := dict["shape"].([]any)
	if !ok {
		return fail("shape must be a tuple of integers, got %s", pyDescribe(dict["shape"]))
	}
	if len(dims) > maxNPYDims {
		return fail("shape has %d dimensions, at most %d are supported", len(dims), maxNPYDims)
	}
	// The data must fit in the file: the element count is bounded by its size, so
	// no caller allocates more than the file holds.
	have := uint64(max(size-int64(start), 0))
	total, over, zero := uint64(sz), false, false
	a.Shape = make([]int, len(dims))
	for i, d := range dims {
		n, ok := d.(int64)
		if !ok || n < 0 {
			return fail("shape must be a tuple of non-negative integers, got %s at position %d", pyDescribe(d), i)
		}
		if n > math.MaxInt32 {
			return fail("dimension %d of the shape is %d, too large", i, n)
		}
		a.Shape[i] = int(n)
		zero = zero || n == 0
		hi, lo := bits.Mul64(total, uint64(n))
		over = over || hi != 0
		total = lo
	}
	switch {
	case zero: // no data, whatever the other dimensions
	case over || total > math.MaxInt:
		return fail("the header declares %s %s, far more than the %d bytes of data the file holds", shapeString(a.Shape), a.Dtype(), have)
	case total > have:
		return fail("truncated: the header declares %s %s (%d bytes of data), the file holds %d", shapeString(a.Shape), a.Dtype(), total, have)
	}
	if fortran && !zero {
		// Fortran and C order are the same bytes when at most one dimension is longer than 1.
		long := 0
		for _, d := range a.Shape {
			if d > 1 {
				long++
			}
		}
		fortran = long > 1
	} else {
		fortran = false
	}
	return a, start, swap, fortran, nil
}

// parseDescr reads a simple numpy type string ('<f4', '|u1', '>i8'), or says why
// it is not one shrink reads.
func parseDescr(s string) (order, kind byte, size int, why string) {
	t := s
	if t != "" && strings.ContainsRune("<>|=", rune(t[0])) {
		order, t = t[0], t[1:]
	}
	if t == "" {
		return 0, 0, 0, fmt.Sprintf("unknown dtype '%s'", s)
	}
	kind, t = t[0], t[1:]
	switch kind {
	case 'O':
		return 0, 0, 0, "holds Python objects (dtype object), which numpy stores as a pickle; shrink never reads pickles: save a numeric array, e.g. numpy.save(path, x.astype(numpy.float32))"
	case 'U', 'S', 'a':
		return 0, 0, 0, fmt.Sprintf("dtype '%s' holds strings, not numbers: save a numeric array", s)
	case 'V':
		return 0, 0, 0, fmt.Sprintf("dtype '%s' holds raw records, not numbers: save a numeric array", s)
	case 'M', 'm':
		return 0, 0, 0, fmt.Sprintf("dtype '%s' holds dates or times, not numbers: save a numeric array", s)
	}
	sizes, ok := npySizes[kind]
	n, err := strconv.Atoi(t)
	if !ok || err != nil || t == "" || t[0] == '+' || t[0] == '-' {
		return 0, 0, 0, fmt.Sprintf("unknown dtype '%s'", s)
	}
	for _, z := range sizes {
		if z == n {
			return order, kind, n, ""
		}
	}
	return 0, 0, 0, fmt.Sprintf("dtype '%s' is not supported (%c with %d bytes)", s, kind, n)
}

// swapBytes returns a copy of b with every size-byte element reversed.
func swapBytes(b []byte, size int) []byte {
	out := make([]byte, len(b))
	for i := 0; i+size <= len(b); i += size {
		for k := 0; k < size; k++ {
			out[i+k] = b[i+size-1-k]
		}
	}
	return out
}

// fortranToC returns a copy of the column-major data b of the given shape in
// row-major order. It walks the output in C order with an odometer over the
// indices, stepping the Fortran offset by each dimension's stride.
func fortranToC(b []byte, shape []int, size int) []byte {
	out := make([]byte, len(b))
	nd := len(shape)
	stride := make([]int, nd) // Fortran strides, in elements
	s := 1
	for i, d := range shape {
		stride[i] = s
		s *= d
	}
	idx := make([]int, nd)
	src := 0
	for dst := 0; dst < len(out); dst += size {
		copy(out[dst:dst+size], b[src*size:src*size+size])
		for k := nd - 1; k >= 0; k-- {
			idx[k]++
			src += stride[k]
			if idx[k] < shape[k] {
				break
			}
			src -= stride[k] * shape[k]
			idx[k] = 0
		}
	}
	return out
}

// EncodeNPY returns a as a .npy file: format version 1.0 (2.0 for a header too
// long for it), little-endian, C order, with the same bytes numpy.save writes for
// the same array.
func EncodeNPY(a *NPY) []byte {
	dims := make([]string, len(a.Shape))
	for i, d := range a.Shape {
		dims[i] = strconv.Itoa(d)
	}
	shape := "(" + strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	shape += ")"
	hdr := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", a.descr(), shape)
	if len(a.Shape) > 0 {
		// numpy leaves room to grow the first dimension in place (21 digits),
		// which makes the header, and so the file, byte for byte numpy.save's.
		hdr += strings.Repeat(" ", max(21-len(dims[0]), 0))
	}
	pre := 10
	if len(hdr)+1+pre > math.MaxUint16 {
		pre = 12
	}
	pad := (64 - (pre+len(hdr)+1)%64) % 64
	hdr += strings.Repeat(" ", pad) + "\n"
	out := make([]byte, 0, pre+len(hdr)+len(a.Data))
	out = append(out, npyMagic...)
	if pre == 10 {
		out = append(out, 1, 0)
		out = binary.LittleEndian.AppendUint16(out, uint16(len(hdr)))
	} else {
		out = append(out, 2, 0)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(hdr)))
	}
	out = append(out, hdr...)
	return append(out, a.Data...)
}

// Float32NPY returns values as a float32 array of the given shape, ready for
// EncodeNPY.
func Float32NPY(shape []int, values []float32) *NPY {
	b := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return &NPY{Kind: 'f', Size: 4, Shape: shape, Data: b}
}

// shapeString prints a shape as a list: [60000, 28, 28].
func shapeString(dims []int) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = strconv.Itoa(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// pyParser reads the Python literal of a .npy header: a dict of strings, booleans,
// None, integers and tuples or lists of them.
type pyParser struct {
	s     string
	i     int
	depth int
}

func (p *pyParser) parse() (any, error) {
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected %q after the value", clip(p.s[p.i:], 20))
	}
	return v, nil
}

func (p *pyParser) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *pyParser) value() (any, error) {
	p.space()
	if p.i >= len(p.s) {
		return nil, fmt.Errorf("unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.container('{', '}')
	case c == '(':
		return p.container('(', ')')
	case c == '[':
		return p.container('[', ']')
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.int()
	case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
		j := p.i
		for j < len(p.s) && (p.s[j] >= 'A' && p.s[j] <= 'Z' || p.s[j] >= 'a' && p.s[j] <= 'z') {
			j++
		}
		word := p.s[p.i:j]
		p.i = j
		switch word {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		}
		return nil, fmt.Errorf("unexpected name %q", word)
	default:
		return nil, fmt.Errorf("unexpected %q", c)
	}
}

// container reads a dict (map[string]any) or a tuple or list ([]any).
func (p *pyParser) container(open, close byte) (any, error) {
	if p.depth++; p.depth > maxNPYDepth {
		return nil, fmt.Errorf("nested too deeply")
	}
	defer func() { p.depth-- }()
	p.i++ // open
	var items []any
	dict := map[string]any{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == close {
			p.i++
			break
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if open == '{' {
			k, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("a dictionary key must be a string, got %s", pyDescribe(v))
			}
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, fmt.Errorf("expected ':' after the key '%s'", k)
			}
			p.i++
			if v, err = p.value(); err != nil {
				return nil, err
			}
			if _, dup := dict[k]; dup {
				return nil, fmt.Errorf("the key '%s' appears twice", k)
			}
			dict[k] = v
		} else {
			items = append(items, v)
		}
		if len(items)+len(dict) > maxNPYDims {
			return nil, fmt.Errorf("more than %d items in a %c%c", maxNPYDims, open, close)
		}
		p.space()
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("unexpected end: missing %q", close)
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case close:
		default:
			return nil, fmt.Errorf("expected ',' or %q, got %q", close, p.s[p.i])
		}
	}
	if open == '{' {
		return dict, nil
	}
	if items == nil {
		items = []any{}
	}
	return items, nil
}

func (p *pyParser) str() (string, error) {
	q := p.s[p.i]
	j := strings.IndexByte(p.s[p.i+1:], q)
	if j < 0 {
		return "", fmt.Errorf("unterminated string")
	}
	s := p.s[p.i+1 : p.i+1+j]
	if strings.IndexByte(s, '\\') >= 0 {
		return "", fmt.Errorf("escapes in strings are not supported")
	}
	p.i += j + 2
	return s, nil
}

// int reads a decimal integer, with Python 2's long suffix L (old writers).
func (p *pyParser) int() (int64, error) {
	j := p.i
	if p.s[j] == '-' {
		j++
	}
	k := j
	for k < len(p.s) && p.s[k] >= '0' && p.s[k] <= '9' {
		k++
	}
	if k == j {
		return 0, fmt.Errorf("expected a digit after '-'")
	}
	n, err := strconv.ParseInt(p.s[p.i:k], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("integer %s is out of range", p.s[p.i:k])
	}
	if k < len(p.s) && p.s[k] == 'L' {
		k++
	}
	p.i = k
	return n, nil
}

func pyDescribe(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case string:
		return "'" + x + "'"
	case []any:
		return "a tuple"
	case map[string]any:
		return "a dictionary"
	}
	return fmt.Sprintf("%T", v)
}
