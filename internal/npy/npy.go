// Package npy gives tests and tools NumPy arrays as typed Go slices: .npy
// files and .npz archives, the format they trade arrays in with PyTorch
// fixtures and with onnxruntime (tools/ort/run.js). Parsing and encoding are
// data's (data.ParseNPY, data.EncodeNPY: one reader for recipes and tools);
// this package only converts between their bytes and []float32, []float64,
// []int8, []uint8, []int32, []int64 and []bool.
//
//	a := &npy.Array{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}
//	err := npy.WriteFile("x.npy", a)
package npy

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strings"

	"github.com/shrink-ml/shrink/data"
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
	if b, ok := encode(a.Data); ok {
		return b.Dtype()
	}
	return ""
}

// encode is Data's little-endian bytes, with data's kind and size.
func encode(v any) (*data.NPY, bool) {
	le := binary.LittleEndian
	var b []byte
	var kind byte
	var size int
	switch d := v.(type) {
	case []float32:
		kind, size = 'f', 4
		for _, x := range d {
			b = le.AppendUint32(b, math.Float32bits(x))
		}
	case []float64:
		kind, size = 'f', 8
		for _, x := range d {
			b = le.AppendUint64(b, math.Float64bits(x))
		}
	case []int8:
		kind, size = 'i', 1
		for _, x := range d {
			b = append(b, byte(x))
		}
	case []uint8:
		kind, size, b = 'u', 1, append([]byte{}, d...)
	case []int32:
		kind, size = 'i', 4
		for _, x := range d {
			b = le.AppendUint32(b, uint32(x))
		}
	case []int64:
		kind, size = 'i', 8
		for _, x := range d {
			b = le.AppendUint64(b, uint64(x))
		}
	case []bool:
		kind, size = 'b', 1
		for _, x := range d {
			var c byte
			if x {
				c = 1
			}
			b = append(b, c)
		}
	default:
		return nil, false
	}
	return &data.NPY{Kind: kind, Size: size, Data: b}, true
}

// decode is a's elements as the Go slice of its dtype.
func decode(a *data.NPY) (any, error) {
	le, raw, n := binary.LittleEndian, a.Data, a.Len()
	switch a.Dtype() {
	case "float32":
		d := make([]float32, n)
		for i := range d {
			d[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
		return d, nil
	case "float64":
		d := make([]float64, n)
		for i := range d {
			d[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
		return d, nil
	case "int8":
		d := make([]int8, n)
		for i := range d {
			d[i] = int8(raw[i])
		}
		return d, nil
	case "uint8":
		return append([]uint8{}, raw...), nil
	case "int32":
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(le.Uint32(raw[4*i:]))
		}
		return d, nil
	case "int64":
		d := make([]int64, n)
		for i := range d {
			d[i] = int64(le.Uint64(raw[8*i:]))
		}
		return d, nil
	case "bool":
		d := make([]bool, n)
		for i := range d {
			d[i] = raw[i] != 0
		}
		return d, nil
	}
	return nil, fmt.Errorf("dtype %s is not supported (want float32, float64, int8, uint8, int32, int64 or bool)", a.Dtype())
}

// Write writes a as a .npy file, the bytes numpy.save writes.
func Write(w io.Writer, a *Array) error {
	b, ok := encode(a.Data)
	if !ok {
		return fmt.Errorf("npy: cannot write %T: want []float32, []float64, []int8, []uint8, []int32, []int64 or []bool", a.Data)
	}
	for _, d := range a.Shape {
		if d < 0 {
			return fmt.Errorf("npy: negative dimension in shape %v", a.Shape)
		}
	}
	if n := len(b.Data) / b.Size; n != a.Len() {
		return fmt.Errorf("npy: shape %v holds %d elements, data has %d", a.Shape, a.Len(), n)
	}
	b.Shape = a.Shape
	_, err := w.Write(data.EncodeNPY(b))
	return err
}

// WriteFile writes a to path.
func WriteFile(path string, a *Array) error {
	var buf bytes.Buffer
	if err := Write(&buf, a); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// ReadFile reads a .npy file.
func ReadFile(path string) (*Array, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, b)
}

// Read reads one whole .npy array from r.
func Read(r io.Reader) (*Array, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	return parse("npy", b)
}

func parse(name string, b []byte) (*Array, error) {
	a, err := data.ParseNPY(name, b)
	if err != nil {
		return nil, err
	}
	v, err := decode(a)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &Array{Shape: a.Shape, Data: v}, nil
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
		// The entry's declared size bounds what is read (a zip bomb stops there).
		b, err := io.ReadAll(io.LimitReader(r, int64(min(f.UncompressedSize64, 1<<40))))
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, f.Name, err)
		}
		a, err := parse(file+": "+f.Name, b)
		if err != nil {
			return nil, err
		}
		out[name] = a
	}
	return out, nil
}
