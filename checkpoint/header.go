package checkpoint

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
)

// The header is parsed by a small strict JSON parser for exactly the shape safetensors uses,
// rather than encoding/json: it rejects duplicate keys (encoding/json keeps the last one),
// lone UTF-16 surrogates in \u escapes (encoding/json turns them into U+FFFD, so two
// different keys could collide), extra or missing fields and non-integer numbers, and it
// never descends into values of an unexpected type, so its work and memory are linear in
// the header size.

// headerEntry is one tensor's header entry.
type headerEntry struct {
	name       string
	dtype      DType
	shape      []int
	begin, end uint64
	nbytes     uint64 // elements * dtype size
	keyPos     int    // where the key is in the header, for errors
}

type header struct {
	meta    map[string]string
	entries []headerEntry
}

type parser struct {
	b   []byte
	pos int
}

// parseHeader parses and checks the JSON header (everything except the layout of the
// data buffer, see checkLayout).
func parseHeader(b []byte) (*header, error) {
	if len(b) == 0 {
		return nil, malformed("header is empty (length 0); it must be a JSON object")
	}
	if !utf8.Valid(b) {
		i := 0
		for i < len(b) {
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return nil, malformed("header is not valid UTF-8 (byte 0x%02x at offset %d)", b[i], i)
	}
	if b[0] != '{' {
		return nil, malformed("header is not a JSON object: it starts with %s, not '{'", describeByte(b, 0))
	}
	p := &parser{b: b, pos: 1}
	// Every entry has a "data_offsets" key, so this bounds their number (by len(b)/14).
	h := &header{meta: map[string]string{}, entries: make([]headerEntry, 0, bytes.Count(b, []byte(`"data_offsets"`)))}
	haveMeta := false
	p.ws()
	if p.peek() == '}' {
		p.pos++
	} else {
		for {
			p.ws()
			keyPos := p.pos
			key, err := p.rawStr()
			if err != nil {
				return nil, err
			}
			if err := p.colon(); err != nil {
				return nil, err
			}
			if string(key) == metadataKey {
				if haveMeta {
					return nil, malformed("header has duplicate key %q (second at byte %d)", metadataKey, keyPos)
				}
				haveMeta = true
				if err := p.metadata(h.meta); err != nil {
					return nil, err
				}
			} else {
				e, err := p.entry(string(key))
				if err != nil {
					return nil, err
				}
				e.keyPos = keyPos
				h.entries = append(h.entries, e)
			}
			more, err := p.next("header", "")
			if err != nil {
				return nil, err
			}
			if !more {
				break
			}
		}
	}
	p.ws()
	if p.pos != len(b) {
		return nil, malformed("header has %s at byte %d after the JSON object (only whitespace padding may follow)",
			describeByte(b, p.pos), p.pos)
	}
	// Sort by name (the order Read returns) and find duplicate names as neighbours.
	slices.SortFunc(h.entries, func(a, b headerEntry) int {
		return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.keyPos, b.keyPos))
	})
	for i := 1; i < len(h.entries); i++ {
		if e := &h.entries[i]; e.name == h.entries[i-1].name {
			return nil, malformed("header has duplicate key %q (second at byte %d)", e.name, e.keyPos)
		}
	}
	return h, nil
}

// entry parses {"dtype": .., "shape": [..], "data_offsets": [b, e]} for tensor name.
func (p *parser) entry(name string) (headerEntry, error) {
	e := headerEntry{name: name}
	if p.peek() != '{' {
		return e, p.wrongType("tensor %q: entry must be an object with dtype, shape and data_offsets, found %s",
			name, p.describe())
	}
	p.pos++
	var haveDType, haveShape, haveOffsets bool
	p.ws()
	if p.peek() == '}' {
		p.pos++
	} else {
		for {
			p.ws()
			fieldPos := p.pos
			field, err := p.rawStr()
			if err != nil {
				return e, err
			}
			if err := p.colon(); err != nil {
				return e, err
			}
			var dup bool
			switch string(field) {
			case "dtype":
				dup, haveDType = haveDType, true
				if !dup {
					if p.peek() != '"' {
						return e, p.wrongType("tensor %q: dtype must be a string, found %s", name, p.describe())
					}
					s, err := p.rawStr()
					if err != nil {
						return e, err
					}
					if e.dtype = internDType(s); e.dtype == "" {
						return e, malformed("tensor %q: unknown dtype %q", name, s)
					}
				}
			case "shape":
				dup, haveShape = haveShape, true
				if !dup {
					if e.shape, err = p.shape(name); err != nil {
						return e, err
					}
				}
			case "data_offsets":
				dup, haveOffsets = haveOffsets, true
				if !dup {
					if e.begin, e.end, err = p.offsets(name); err != nil {
						return e, err
					}
				}
			default:
				return e, malformed("tensor %q: unexpected field %q at byte %d (an entry has only dtype, shape and data_offsets)",
					name, field, fieldPos)
			}
			if dup {
				return e, malformed("tensor %q: duplicate field %q at byte %d", name, field, fieldPos)
			}
			more, err := p.next("entry of tensor ", name)
			if err != nil {
				return e, err
			}
			if !more {
				break
			}
		}
	}
	switch {
	case !haveDType:
		return e, malformed("tensor %q: entry is missing dtype", name)
	case !haveShape:
		return e, malformed("tensor %q: entry is missing shape", name)
	case !haveOffsets:
		return e, malformed("tensor %q: entry is missing data_offsets", name)
	}
	// Left to right checked multiplication, as the reference implementation does.
	n := uint64(1)
	for _, d := range e.shape {
		if d != 0 && n > uint64(math.MaxInt)/uint64(d) {
			return e, malformed("tensor %q: shape %v: element count overflows", name, e.shape)
		}
		n *= uint64(d)
	}
	size := uint64(e.dtype.Size())
	if n > uint64(math.MaxInt)/size {
		return e, malformed("tensor %q: shape %v of %s: byte size overflows", name, e.shape, e.dtype)
	}
	e.nbytes = n * size
	return e, nil
}

// shape parses an array of non-negative integers that fit in an int.
func (p *parser) shape(name string) ([]int, error) {
	if p.peek() != '[' {
		return nil, p.wrongType("tensor %q: shape must be an array of non-negative integers, found %s", name, p.describe())
	}
	p.pos++
	// Size the slice by counting commas up to the closing bracket (for a valid shape;
	// otherwise parsing stops at the first error anyway): dims cost 8 bytes each, never
	// the garbage of repeated growth.
	n := 1
	for i := p.pos; i < len(p.b) && p.b[i] != ']'; i++ {
		if p.b[i] == ',' {
			n++
		}
	}
	dims := make([]int, 0, n)
	p.ws()
	if p.peek() == ']' {
		p.pos++
		return dims, nil
	}
	for {
		p.ws()
		v, err := p.uint(name, "shape")
		if err != nil {
			return nil, err
		}
		if v > math.MaxInt {
			return nil, malformed("tensor %q: shape dim %d is too large", name, v)
		}
		dims = append(dims, int(v))
		p.ws()
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return dims, nil
		default:
			return nil, p.syntax("',' or ']' in the shape of tensor " + quote(name))
		}
	}
}

// offsets parses [begin, end].
func (p *parser) offsets(name string) (begin, end uint64, err error) {
	if p.peek() != '[' {
		return 0, 0, p.wrongType("tensor %q: data_offsets must be an array of two non-negative integers, found %s",
			name, p.describe())
	}
	p.pos++
	var v [2]uint64
	for i := range v {
		p.ws()
		if p.peek() == ']' {
			return 0, 0, malformed("tensor %q: data_offsets has %d numbers, want 2", name, i)
		}
		if v[i], err = p.uint(name, "data_offsets"); err != nil {
			return 0, 0, err
		}
		p.ws()
		want := byte(',')
		if i == 1 {
			want = ']'
		}
		if c := p.peek(); c != want {
			if i == 1 && c == ',' {
				return 0, 0, malformed("tensor %q: data_offsets has more than 2 numbers", name)
			}
			if i == 0 && c == ']' {
				return 0, 0, malformed("tensor %q: data_offsets has 1 number, want 2", name)
			}
			return 0, 0, p.syntax(fmt.Sprintf("%q in the data_offsets of tensor %s", want, quote(name)))
		}
		p.pos++
	}
	return v[0], v[1], nil
}

// uint parses a JSON number that must be a non-negative integer (field names the context).
func (p *parser) uint(name, field string) (uint64, error) {
	b := p.b
	start := p.pos
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) || b[i] < '0' || b[i] > '9' {
		if i > start {
			return 0, p.syntax("a digit after '-'")
		}
		return 0, p.wrongType("tensor %q: %s must hold non-negative integers, found %s", name, field, p.describe())
	}
	digits := i
	if b[i] == '0' {
		i++
		if i < len(b) && b[i] >= '0' && b[i] <= '9' {
			p.pos = i
			return 0, p.syntax("no leading zeros in a number")
		}
	} else {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	intEnd := i
	isInt := true
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			p.pos = i
			return 0, p.syntax("a digit after '.'")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		isInt = false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			p.pos = i
			return 0, p.syntax("a digit in the exponent")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		isInt = false
	}
	p.pos = i
	tok := b[start:i]
	if digits > start {
		return 0, malformed("tensor %q: %s value %s is negative", name, field, clip(tok))
	}
	if !isInt {
		return 0, malformed("tensor %q: %s value %s is not an integer", name, field, clip(tok))
	}
	var v uint64
	for _, c := range b[digits:intEnd] {
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, malformed("tensor %q: %s value %s is too large", name, field, clip(tok))
		}
		v = v*10 + d
	}
	return v, nil
}

// metadata parses the __metadata__ object (string -> string) into m; null is accepted
// as no metadata, like the reference implementation.
func (p *parser) metadata(m map[string]string) error {
	if p.hasLiteral("null") {
		p.pos += 4
		return nil
	}
	if p.peek() != '{' {
		return p.wrongType("__metadata__ must be an object of strings, found %s", p.describe())
	}
	p.pos++
	p.ws()
	if p.peek() == '}' {
		p.pos++
		return nil
	}
	for {
		p.ws()
		k, err := p.str()
		if err != nil {
			return err
		}
		if _, dup := m[k]; dup {
			return malformed("__metadata__ has duplicate key %q", k)
		}
		if err := p.colon(); err != nil {
			return err
		}
		if p.peek() != '"' {
			return p.wrongType("__metadata__ value for %q must be a string, found %s", k, p.describe())
		}
		v, err := p.str()
		if err != nil {
			return err
		}
		m[k] = v
		more, err := p.next("__metadata__", "")
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}

// internDType returns the DType spelled s, or "" (without allocating).
func internDType(s []byte) DType {
	for _, d := range DTypes {
		if string(d) == string(s) {
			return d
		}
	}
	return ""
}

// str parses a JSON string (p.b is known to be valid UTF-8).
func (p *parser) str() (string, error) {
	s, err := p.rawStr()
	return string(s), err
}

// rawStr parses a JSON string and returns its bytes; without escapes they alias the header.
func (p *parser) rawStr() ([]byte, error) {
	b := p.b
	if p.pos >= len(b) || b[p.pos] != '"' {
		return nil, p.syntax("a string")
	}
	start := p.pos + 1
	for i := start; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			p.pos = i + 1
			return b[start:i:i], nil
		case c == '\\':
			return p.strEscaped(start, i)
		case c < 0x20:
			p.pos = i
			return nil, p.syntax("no control characters in a string (escape them)")
		}
	}
	p.pos = len(b)
	return nil, malformed("header is not valid JSON: unterminated string starting at byte %d", start-1)
}

// strEscaped continues rawStr from the first backslash at i.
func (p *parser) strEscaped(start, i int) ([]byte, error) {
	b := p.b
	out := make([]byte, 0, i-start+16)
	out = append(out, b[start:i]...)
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return out, nil
		case c < 0x20:
			p.pos = i
			return nil, p.syntax("no control characters in a string (escape them)")
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(b, i+2)
			if !ok {
				p.pos = i
				return nil, p.syntax("four hex digits after \\u")
			}
			switch {
			case r >= 0xD800 && r < 0xDC00:
				lo, ok := rune(0), false
				if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
					lo, ok = hex4(b, i+8)
				}
				if !ok || lo < 0xDC00 || lo >= 0xE000 {
					return nil, malformed("header is not valid JSON: lone UTF-16 surrogate \\u%04x at byte %d", r, i)
				}
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				i += 6
			case r >= 0xDC00 && r < 0xE000:
				return nil, malformed("header is not valid JSON: lone UTF-16 surrogate \\u%04x at byte %d", r, i)
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default:
			p.pos = i
			return nil, p.syntax("a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)")
		}
		i += 2
	}
	return nil, malformed("header is not valid JSON: unterminated string starting at byte %d", start-1)
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// next consumes ',' (returns true) or '}' (returns false) after an object member.
// in and name (quoted if not empty) say where, for the error.
func (p *parser) next(in, name string) (bool, error) {
	p.ws()
	switch p.peek() {
	case ',':
		p.pos++
		return true, nil
	case '}':
		p.pos++
		return false, nil
	}
	if name != "" {
		in += quote(name)
	}
	return false, p.syntax("',' or '}' in the " + in)
}

func (p *parser) colon() error {
	p.ws()
	if p.peek() != ':' {
		return p.syntax("':' after an object key")
	}
	p.pos++
	p.ws()
	return nil
}

func (p *parser) ws() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// peek returns the current byte, or 0 at the end.
func (p *parser) peek() byte {
	if p.pos < len(p.b) {
		return p.b[p.pos]
	}
	return 0
}

func (p *parser) hasLiteral(lit string) bool {
	return len(p.b)-p.pos >= len(lit) && string(p.b[p.pos:p.pos+len(lit)]) == lit
}

func (p *parser) syntax(want string) error {
	return malformed("header is not valid JSON: expected %s at byte %d, found %s", want, p.pos, describeByte(p.b, p.pos))
}

// wrongType reports a value of the wrong type at p.pos (format ends with "found %s" and
// its last argument is p.describe()), or a syntax error at the end of the header.
func (p *parser) wrongType(format string, args ...any) error {
	if p.pos >= len(p.b) {
		return p.syntax("a value")
	}
	return malformed(format, args...)
}

// describe names the JSON value that starts at p.pos, for type errors.
func (p *parser) describe() string {
	switch c := p.peek(); {
	case p.pos >= len(p.b):
		return "the end of the header"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	case p.hasLiteral("true"), p.hasLiteral("false"):
		return "a boolean"
	case p.hasLiteral("null"):
		return "null"
	}
	return describeByte(p.b, p.pos)
}

func describeByte(b []byte, i int) string {
	if i >= len(b) {
		return "the end of the header"
	}
	r, _ := utf8.DecodeRune(b[i:])
	return fmt.Sprintf("%q", r)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// clip shortens a token for an error message.
func clip(tok []byte) string {
	if len(tok) > 40 {
		return string(tok[:40]) + "..."
	}
	return string(tok)
}
