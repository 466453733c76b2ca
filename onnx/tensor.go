package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/shrink-ml/shrink/onnx/onnxpb"
)

// DataType is an ONNX tensor element type; its String is ONNX's name
// ("FLOAT").
type DataType = onnxpb.TensorProto_DataType

// The element types this package reads and writes.
const (
	TypeUndefined = onnxpb.TensorProto_UNDEFINED
	TypeFloat     = onnxpb.TensorProto_FLOAT
	TypeDouble    = onnxpb.TensorProto_DOUBLE
	TypeInt8      = onnxpb.TensorProto_INT8
	TypeUint8     = onnxpb.TensorProto_UINT8
	TypeInt32     = onnxpb.TensorProto_INT32
	TypeInt64     = onnxpb.TensorProto_INT64
	TypeBool      = onnxpb.TensorProto_BOOL
	TypeInt4      = onnxpb.TensorProto_INT4
	TypeUint4     = onnxpb.TensorProto_UINT4
)

const supportedTypes = "FLOAT, DOUBLE, INT8, UINT8, INT32, INT64, BOOL, INT4, UINT4"

// Tensor is a dense tensor with its elements decoded, in row-major order.
// The slice for its Type holds them and the others are nil.
type Tensor struct {
	Name    string
	Type    DataType
	Dims    []int64   // empty for a scalar
	Float32 []float32 // TypeFloat
	Float64 []float64 // TypeDouble
	Int8    []int8    // TypeInt8, and TypeInt4 with values in [-8, 7]
	Uint8   []uint8   // TypeUint8, TypeUint4 with values in [0, 15], and TypeBool (0 or 1)
	Int32   []int32   // TypeInt32
	Int64   []int64   // TypeInt64
}

// FloatTensor is a FLOAT tensor; dims nil or empty makes a scalar.
func FloatTensor(name string, dims []int64, data []float32) *Tensor {
	return &Tensor{Name: name, Type: TypeFloat, Dims: dims, Float32: data}
}

// DoubleTensor is a DOUBLE tensor.
func DoubleTensor(name string, dims []int64, data []float64) *Tensor {
	return &Tensor{Name: name, Type: TypeDouble, Dims: dims, Float64: data}
}

// Int8Tensor is an INT8 tensor.
func Int8Tensor(name string, dims []int64, data []int8) *Tensor {
	return &Tensor{Name: name, Type: TypeInt8, Dims: dims, Int8: data}
}

// Uint8Tensor is a UINT8 tensor.
func Uint8Tensor(name string, dims []int64, data []uint8) *Tensor {
	return &Tensor{Name: name, Type: TypeUint8, Dims: dims, Uint8: data}
}

// Int32Tensor is an INT32 tensor.
func Int32Tensor(name string, dims []int64, data []int32) *Tensor {
	return &Tensor{Name: name, Type: TypeInt32, Dims: dims, Int32: data}
}

// Int64Tensor is an INT64 tensor.
func Int64Tensor(name string, dims []int64, data []int64) *Tensor {
	return &Tensor{Name: name, Type: TypeInt64, Dims: dims, Int64: data}
}

// BoolTensor is a BOOL tensor.
func BoolTensor(name string, dims []int64, data []bool) *Tensor {
	u := make([]uint8, len(data))
	for i, b := range data {
		if b {
			u[i] = 1
		}
	}
	return &Tensor{Name: name, Type: TypeBool, Dims: dims, Uint8: u}
}

// Int4Tensor is an INT4 tensor (IR 10, opset 21): one value in [-8, 7] per
// element of data, packed two to a byte in the file.
func Int4Tensor(name string, dims []int64, data []int8) *Tensor {
	return &Tensor{Name: name, Type: TypeInt4, Dims: dims, Int8: data}
}

// Uint4Tensor is a UINT4 tensor: one value in [0, 15] per element of data.
func Uint4Tensor(name string, dims []int64, data []uint8) *Tensor {
	return &Tensor{Name: name, Type: TypeUint4, Dims: dims, Uint8: data}
}

// Len is the number of elements the dimensions hold, or -1 when a
// dimension is negative or the elements would not fit in memory.
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Dims {
		if d < 0 || (d > 0 && int64(n) > math.MaxInt/8/d) {
			return -1
		}
		n *= int(d)
	}
	return n
}

// dataLen is the length of the slice t.Type uses, and whether the other
// slices are empty.
func (t *Tensor) dataLen() (int, error) {
	n, set := -1, 0
	for _, l := range []struct {
		len int
		ok  bool
	}{
		{len(t.Float32), t.Type == TypeFloat},
		{len(t.Float64), t.Type == TypeDouble},
		{len(t.Int8), t.Type == TypeInt8 || t.Type == TypeInt4},
		{len(t.Uint8), t.Type == TypeUint8 || t.Type == TypeUint4 || t.Type == TypeBool},
		{len(t.Int32), t.Type == TypeInt32},
		{len(t.Int64), t.Type == TypeInt64},
	} {
		if l.ok {
			n = l.len
		} else if l.len > 0 {
			set++
		}
	}
	if n < 0 {
		return 0, fmt.Errorf("data type %s is not supported (shrink handles %s)", t.Type, supportedTypes)
	}
	if set > 0 {
		return 0, fmt.Errorf("a %s tensor with data in a slice of another type", t.Type)
	}
	return n, nil
}

// check reports what is wrong with a tensor, naming it.
func (t *Tensor) check() error {
	n, err := t.dataLen()
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if want := t.Len(); want != n {
		if want < 0 {
			return fmt.Errorf("tensor %q: dims %v are negative or too large", t.Name, t.Dims)
		}
		return fmt.Errorf("tensor %q: dims %v hold %d elements, the data has %d", t.Name, t.Dims, want, n)
	}
	lo, hi := 0, 0
	switch t.Type {
	case TypeInt4:
		for i, v := range t.Int8 {
			if v < -8 || v > 7 {
				return fmt.Errorf("tensor %q: INT4 element %d is %d, outside [-8, 7]", t.Name, i, v)
			}
		}
	case TypeUint4:
		hi = 15
	case TypeBool:
		hi = 1
	}
	if hi > 0 {
		for i, v := range t.Uint8 {
			if int(v) < lo || int(v) > hi {
				return fmt.Errorf("tensor %q: %s element %d is %d, outside [%d, %d]", t.Name, t.Type, i, v, lo, hi)
			}
		}
	}
	return nil
}

// raw is the tensor's raw_data: little-endian, 4-bit types packed two to a
// byte with the first element in the low nibble.
func (t *Tensor) raw() []byte {
	le := binary.LittleEndian
	switch t.Type {
	case TypeFloat:
		b := make([]byte, 4*len(t.Float32))
		for i, v := range t.Float32 {
			le.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b
	case TypeDouble:
		b := make([]byte, 8*len(t.Float64))
		for i, v := range t.Float64 {
			le.PutUint64(b[8*i:], math.Float64bits(v))
		}
		return b
	case TypeInt8:
		b := make([]byte, len(t.Int8))
		for i, v := range t.Int8 {
			b[i] = byte(v)
		}
		return b
	case TypeUint8, TypeBool:
		return append([]byte{}, t.Uint8...)
	case TypeInt32:
		b := make([]byte, 4*len(t.Int32))
		for i, v := range t.Int32 {
			le.PutUint32(b[4*i:], uint32(v))
		}
		return b
	case TypeInt64:
		b := make([]byte, 8*len(t.Int64))
		for i, v := range t.Int64 {
			le.PutUint64(b[8*i:], uint64(v))
		}
		return b
	case TypeInt4:
		b := make([]byte, (len(t.Int8)+1)/2)
		for i, v := range t.Int8 {
			b[i/2] |= byte(v&0xf) << (4 * (i % 2))
		}
		return b
	case TypeUint4:
		b := make([]byte, (len(t.Uint8)+1)/2)
		for i, v := range t.Uint8 {
			b[i/2] |= (v & 0xf) << (4 * (i % 2))
		}
		return b
	}
	panic("onnx: raw of unchecked tensor type " + t.Type.String())
}

// rawSize is how many bytes of raw_data n elements take.
func rawSize(dt DataType, n int) int {
	switch dt {
	case TypeFloat, TypeInt32:
		return 4 * n
	case TypeDouble, TypeInt64:
		return 8 * n
	case TypeInt4, TypeUint4:
		return (n + 1) / 2
	}
	return n
}

func (t *Tensor) toProto() *onnxpb.TensorProto {
	p := &onnxpb.TensorProto{Dims: t.Dims, DataType: proto32(int32(t.Type)), RawData: t.raw()}
	if t.Name != "" {
		p.Name = &t.Name
	}
	return p
}

func proto32(v int32) *int32 { return &v }

// tensorFromProto decodes a TensorProto's data, from raw_data or from the
// typed field its type uses.
func tensorFromProto(p *onnxpb.TensorProto) (*Tensor, error) {
	t := &Tensor{Name: p.GetName(), Type: DataType(p.GetDataType()), Dims: p.Dims}
	if p.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(p.ExternalData) > 0 {
		loc := ""
		for _, e := range p.ExternalData {
			if e.GetKey() == "location" {
				loc = fmt.Sprintf(" (location %q)", e.GetValue())
			}
		}
		return nil, fmt.Errorf("tensor %q: its data is in an external file%s, which shrink does not read: save the model as one file, e.g. onnx.save_model(model, path, save_as_external_data=False)", t.Name, loc)
	}
	if p.Segment != nil {
		return nil, fmt.Errorf("tensor %q: segmented tensors are not supported", t.Name)
	}
	if _, err := t.dataLen(); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	n := t.Len()
	if n < 0 {
		return nil, fmt.Errorf("tensor %q: dims %v are negative or too large", t.Name, t.Dims)
	}
	typed := []struct {
		field string
		len   int
	}{
		{"float_data", len(p.FloatData)}, {"int32_data", len(p.Int32Data)}, {"int64_data", len(p.Int64Data)},
		{"double_data", len(p.DoubleData)}, {"uint64_data", len(p.Uint64Data)}, {"string_data", len(p.StringData)},
	}
	var field string // the typed field this type may use
	switch t.Type {
	case TypeFloat:
		field = "float_data"
	case TypeDouble:
		field = "double_data"
	case TypeInt64:
		field = "int64_data"
	default:
		field = "int32_data"
	}
	got := 0
	for _, f := range typed {
		switch {
		case f.len == 0:
		case f.field != field:
			return nil, fmt.Errorf("tensor %q: a %s tensor with %s (want %s or raw_data)", t.Name, t.Type, f.field, field)
		case p.RawData != nil:
			return nil, fmt.Errorf("tensor %q: both raw_data and %s", t.Name, f.field)
		default:
			got = f.len
		}
	}
	if p.RawData != nil {
		if want := rawSize(t.Type, n); len(p.RawData) != want {
			return nil, fmt.Errorf("tensor %q: %d %s elements take %d bytes of raw_data, it has %d", t.Name, n, t.Type, want, len(p.RawData))
		}
		t.fromRaw(p.RawData, n)
		return t, t.check()
	}
	want := n
	if t.Type == TypeInt4 || t.Type == TypeUint4 {
		want = (n + 1) / 2
	}
	if got != want {
		return nil, fmt.Errorf("tensor %q: %d %s elements need %d values in %s, it has %d", t.Name, n, t.Type, want, field, got)
	}
	switch t.Type {
	case TypeFloat:
		t.Float32 = p.FloatData
	case TypeDouble:
		t.Float64 = p.DoubleData
	case TypeInt64:
		t.Int64 = p.Int64Data
	case TypeInt32:
		t.Int32 = p.Int32Data
	default:
		// One element, or two 4-bit ones, per int32: check each fits the
		// byte it stands for, then read the bytes as raw_data.
		lo, hi := int32(0), int32(255)
		if t.Type == TypeInt8 {
			lo, hi = -128, 127
		}
		b := make([]byte, len(p.Int32Data))
		for i, v := range p.Int32Data {
			if v < lo || v > hi {
				return nil, fmt.Errorf("tensor %q: int32_data[%d] = %d does not fit a %s", t.Name, i, v, t.Type)
			}
			b[i] = byte(v)
		}
		t.fromRaw(b, n)
	}
	return t, t.check()
}

// fromRaw decodes n elements from little-endian bytes of the right length.
func (t *Tensor) fromRaw(b []byte, n int) {
	if n == 0 {
		return // nil, as the constructors leave an empty tensor's data
	}
	le := binary.LittleEndian
	switch t.Type {
	case TypeFloat:
		t.Float32 = make([]float32, n)
		for i := range t.Float32 {
			t.Float32[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case TypeDouble:
		t.Float64 = make([]float64, n)
		for i := range t.Float64 {
			t.Float64[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
	case TypeInt8:
		t.Int8 = make([]int8, n)
		for i := range t.Int8 {
			t.Int8[i] = int8(b[i])
		}
	case TypeUint8, TypeBool:
		t.Uint8 = append([]uint8{}, b[:n]...)
	case TypeInt32:
		t.Int32 = make([]int32, n)
		for i := range t.Int32 {
			t.Int32[i] = int32(le.Uint32(b[4*i:]))
		}
	case TypeInt64:
		t.Int64 = make([]int64, n)
		for i := range t.Int64 {
			t.Int64[i] = int64(le.Uint64(b[8*i:]))
		}
	case TypeInt4:
		t.Int8 = make([]int8, n)
		for i := range t.Int8 {
			t.Int8[i] = int8(b[i/2]>>(4*(i%2))<<4) >> 4 // sign-extend the nibble
		}
	case TypeUint4:
		t.Uint8 = make([]uint8, n)
		for i := range t.Uint8 {
			t.Uint8[i] = b[i/2] >> (4 * (i % 2)) & 0xf
		}
	}
}
