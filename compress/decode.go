package compress

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/shrink-ml/shrink/checkpoint"
)

// Limits bound what decoding allocates, whatever a file claims.
type Limits struct {
	// MaxBytes is the most decoded data: the body, plus the tensors' bytes and
	// the integers of packed tensors.
	MaxBytes int
	// Ratio, when set, also bounds the decoded data by the file's own size: at
	// most Ratio bytes per byte of the file, or Floor bytes, whichever is more.
	// A 34-byte file claiming a 2 GB tensor of zeros is then refused before
	// anything is allocated, rather than being decoded because it fits MaxBytes.
	Ratio, Floor int
}

// DefaultLimits are generous for models and stop a corrupt or hostile file
// from claiming more memory than a machine has: 2 GiB at most, and at most
// 4096 bytes decoded per byte stored above 64 MiB. A real checkpoint decodes to
// 20 times its compressed size at 95% sparsity, 730 times at 99.9% (measured on
// a 784x300 layer); 4096 times is 99.98%.
var DefaultLimits = Limits{MaxBytes: 1 << 31, Ratio: 4096, Floor: 64 << 20}

// budget is what a file of n bytes may decode to.
func (l Limits) budget(n int) int {
	if l.Ratio <= 0 {
		return l.MaxBytes
	}
	return min(l.MaxBytes, max(l.Floor, l.Ratio*n))
}

// Info describes a compressed file, for inspect and the format's docs.
type Info struct {
	Version   int       `json:"version"`
	FileBytes int       `json:"file_bytes"` // the compressed file
	BodyBytes int       `json:"body_bytes"` // the body before entropy coding
	Sections  []Section `json:"sections"`
}

// Section is one tensor's section.
type Section struct {
	Name     string           `json:"name"`
	DType    checkpoint.DType `json:"dtype"`
	Shape    []int            `json:"shape"`
	Encoding string           `json:"encoding"` // raw, float or int, with the structure and values chosen
	Bytes    int              `json:"bytes"`    // the payload before entropy coding
}

// Decode reads a compressed file back into the checkpoint it was made from.
func Decode(b []byte) (*checkpoint.File, error) {
	f, _, err := DecodeInfo(b, DefaultLimits)
	return f, err
}

// DecodeInfo is Decode with explicit limits that also describes each section.
// Every error starts with "compress: " and says what is wrong.
func DecodeInfo(b []byte, lim Limits) (*checkpoint.File, *Info, error) {
	f, info, err := decode(b, lim)
	if err != nil {
		return nil, nil, fmt.Errorf("compress: %w", err)
	}
	return f, info, nil
}

func decode(b []byte, lim Limits) (*checkpoint.File, *Info, error) {
	if !IsCompressed(b) {
		return nil, nil, errors.New("not a compressed checkpoint (no SHKZ magic)")
	}
	if len(b) < len(Magic)+2 {
		return nil, nil, errors.New("the file ends inside its header")
	}
	if v := b[len(Magic)]; v != Version {
		return nil, nil, fmt.Errorf("format version %d; this shrink reads version %d (a newer shrink wrote it?)", v, Version)
	}
	if b[len(Magic)+1] != 0 {
		return nil, nil, fmt.Errorf("reserved header byte is %d, not 0", b[len(Magic)+1])
	}
	budget := lim.budget(len(b))
	body, err := readBlocks(b[len(Magic)+2:], budget)
	if err != nil {
		return nil, nil, err
	}
	d := &decoder{r: reader{b: body}, budget: budget - len(body)}
	f, info, err := d.file()
	if err != nil {
		return nil, nil, err
	}
	info.FileBytes, info.BodyBytes = len(b), len(body)
	return f, info, nil
}

// decoder reads the body, charging every allocation the file asks for.
type decoder struct {
	r      reader
	budget int
}

func (d *decoder) charge(n int) error {
	if n < 0 || n > d.budget {
		return fmt.Errorf("the tensors need more than the %d bytes allowed", d.budget)
	}
	d.budget -= n
	return nil
}

func (d *decoder) file() (*checkpoint.File, *Info, error) {
	r := &d.r
	f := &checkpoint.File{Metadata: map[string]string{}}
	info := &Info{Version: Version}
	nmeta := r.count("metadata count", r.left()/2)
	for i := 0; i < nmeta && r.err == nil; i++ {
		k := r.str("metadata key")
		v := r.str("metadata value")
		if _, dup := f.Metadata[k]; dup && r.err == nil {
			r.fail("metadata key %q twice", k)
		}
		f.Metadata[k] = v
	}
	count := r.count("tensor count", r.left()/5)
	if r.err != nil {
		return nil, nil, r.err
	}
	for i := 0; i < count; i++ {
		t, s, err := d.tensor()
		if err != nil {
			return nil, nil, err
		}
		if i > 0 && t.Name <= f.Tensors[i-1].Name {
			return nil, nil, fmt.Errorf("tensor %q is out of name order or repeated", t.Name)
		}
		f.Tensors = append(f.Tensors, t)
		info.Sections = append(info.Sections, s)
	}
	if r.left() != 0 {
		return nil, nil, fmt.Errorf("%d bytes after the last section", r.left())
	}
	if err := f.Validate(); err != nil {
		return nil, nil, err
	}
	return f, info, nil
}

// tensor reads one section.
func (d *decoder) tensor() (checkpoint.Tensor, Section, error) {
	r := &d.r
	name := r.str("tensor name")
	dt := checkpoint.DType(r.str("dtype"))
	rank := r.count("rank", min(r.left(), 64))
	shape := make([]int, rank)
	elems := uint64(1)
	for i := range shape {
		dim := r.uvarint("dim")
		if dim > math.MaxInt32 {
			r.fail("dim %d is too large", dim)
		}
		shape[i] = int(dim)
		elems = min(elems*dim, math.MaxInt32+1) // saturates: anything this large fails the budget
	}
	enc := r.u8("encoding")
	payload := r.bytes("payload", r.count("payload length", r.left()))
	if r.err != nil {
		return checkpoint.Tensor{}, Section{}, fmt.Errorf("tensor %q: %w", name, r.err)
	}
	fail := func(err error) (checkpoint.Tensor, Section, error) {
		return checkpoint.Tensor{}, Section{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	if !dt.Valid() {
		return fail(fmt.Errorf("unknown dtype %q", dt))
	}
	size := elems * uint64(dt.Size())
	if size > uint64(d.budget) {
		return fail(fmt.Errorf("%s %v needs more than the %d bytes allowed", dt, shape, d.budget))
	}
	if err := d.charge(int(size)); err != nil {
		return fail(err)
	}
	out := make([]byte, size)
	desc, err := decodePayload(enc, payload, dt, shape, out, d.charge)
	if err != nil {
		return fail(err)
	}
	t := checkpoint.Tensor{Name: name, DType: dt, Shape: shape, Data: out}
	return t, Section{Name: name, DType: dt, Shape: slices.Clone(shape), Encoding: desc, Bytes: len(payload)}, nil
}

// decodePayload decodes one section's payload into out (the tensor's bytes).
func decodePayload(enc byte, payload []byte, dt checkpoint.DType, shape []int, out []byte, charge func(int) error) (string, error) {
	r := &reader{b: payload}
	switch enc {
	case encRaw:
		if len(payload) != len(out) {
			return "", fmt.Errorf("raw payload of %d bytes for %d", len(payload), len(out))
		}
		copy(out, payload)
		return "raw", nil
	case encFloat:
		if dt != checkpoint.DTypeF32 {
			return "", fmt.Errorf("float encoding for dtype %s", dt)
		}
		desc, err := decodeFloats(r, out)
		return "float: " + desc, err
	case encInt:
		desc, err := decodeInts(r, dt, shape, out, charge)
		return "int: " + desc, err
	}
	return "", fmt.Errorf("unknown encoding %d", enc)
}
