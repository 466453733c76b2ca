package checkpoint

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
	"unsafe"
)

// Tensor is one named array. Data holds the raw little-endian element bytes in row-major
// order; len(Data) must be NumElements()*DType.Size(). A nil or empty Shape is a scalar.
//
// Tensors returned by Read share one backing buffer (each Data slice is capped, so appending
// to one never overwrites another); keeping any of them alive keeps the whole buffer alive.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// littleEndian reports whether the host stores integers least significant byte first, in
// which case element slices and file bytes have the same layout and convert with a memmove.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// numElements multiplies the dims left to right, as the safetensors reference
// implementation does, and reports false for a negative dim or an overflow (of int).
func numElements(shape []int) (int, bool) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// byteSize is numElements times the element size, or false on overflow or a bad shape.
func byteSize(shape []int, dt DType) (int, bool) {
	n, ok := numElements(shape)
	size := dt.Size()
	if !ok || size == 0 || n > math.MaxInt/size {
		return 0, false
	}
	return n * size, true
}

// NumElements is the product of the shape's dims (1 for a scalar), or -1 if a dim is
// negative or the product overflows.
func (t *Tensor) NumElements() int {
	n, ok := numElements(t.Shape)
	if !ok {
		return -1
	}
	return n
}

// Validate checks that the tensor could be encoded: a valid UTF-8 name other than
// "__metadata__", a known dtype, non-negative dims whose product does not overflow, and
// len(Data) equal to the number of elements times the element size.
func (t *Tensor) Validate() error {
	if t.Name == metadataKey {
		return fmt.Errorf("checkpoint: tensor name %q is reserved for the metadata", t.Name)
	}
	if !utf8.ValidString(t.Name) {
		return fmt.Errorf("checkpoint: tensor name %q is not valid UTF-8", t.Name)
	}
	if !t.DType.Valid() {
		return fmt.Errorf("checkpoint: tensor %q: unknown dtype %q", t.Name, string(t.DType))
	}
	if _, ok := numElements(t.Shape); !ok {
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("checkpoint: tensor %q: shape %v has a negative dim", t.Name, t.Shape)
			}
		}
		return fmt.Errorf("checkpoint: tensor %q: shape %v: element count overflows", t.Name, t.Shape)
	}
	need, ok := byteSize(t.Shape, t.DType)
	if !ok {
		return fmt.Errorf("checkpoint: tensor %q: shape %v of %s: byte size overflows", t.Name, t.Shape, t.DType)
	}
	if need != len(t.Data) {
		return fmt.Errorf("checkpoint: tensor %q: shape %v of %s needs %d bytes but Data has %d",
			t.Name, t.Shape, t.DType, need, len(t.Data))
	}
	return nil
}

// fromValues builds a tensor from a slice of elements whose in-memory size is dt.Size().
func fromValues[T any](name string, dt DType, shape []int, v []T) Tensor {
	data := make([]byte, len(v)*dt.Size())
	if len(v) > 0 {
		copy(data, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(data)))
		if !littleEndian {
			swapBytes(data, dt.Size())
		}
	}
	return Tensor{Name: name, DType: dt, Shape: slices.Clone(shape), Data: data}
}

// values decodes t.Data into a new slice of elements of type dt (whose in-memory size is
// dt.Size()).
func values[T any](t *Tensor, dt DType) ([]T, error) {
	if t.DType != dt {
		return nil, fmt.Errorf("checkpoint: tensor %q is %s, not %s", t.Name, string(t.DType), dt)
	}
	need, ok := byteSize(t.Shape, dt)
	if !ok || need != len(t.Data) {
		return nil, fmt.Errorf("checkpoint: tensor %q: shape %v of %s does not match its %d data bytes",
			t.Name, t.Shape, dt, len(t.Data))
	}
	out := make([]T, need/dt.Size())
	if len(out) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), need), t.Data)
		if !littleEndian {
			swapBytes(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), need), dt.Size())
		}
	}
	return out, nil
}

// swapBytes reverses the bytes of each size-byte element of b (big-endian hosts only).
func swapBytes(b []byte, size int) {
	if size == 1 {
		return
	}
	for i := 0; i+size <= len(b); i += size {
		slices.Reverse(b[i : i+size])
	}
}

// F32 returns an F32 tensor holding a copy of v (len(v) should be the product of shape;
// Validate and Encode report a mismatch). Shape is copied.
func F32(name string, shape []int, v []float32) Tensor {
	return fromValues(name, DTypeF32, shape, v)
}

// F64 returns an F64 tensor holding a copy of v.
func F64(name string, shape []int, v []float64) Tensor {
	return fromValues(name, DTypeF64, shape, v)
}

// I8 returns an I8 tensor holding a copy of v.
func I8(name string, shape []int, v []int8) Tensor { return fromValues(name, DTypeI8, shape, v) }

// U8 returns a U8 tensor holding a copy of v.
func U8(name string, shape []int, v []byte) Tensor { return fromValues(name, DTypeU8, shape, v) }

// I32 returns an I32 tensor holding a copy of v.
func I32(name string, shape []int, v []int32) Tensor { return fromValues(name, DTypeI32, shape, v) }

// I64 returns an I64 tensor holding a copy of v.
func I64(name string, shape []int, v []int64) Tensor { return fromValues(name, DTypeI64, shape, v) }

// Float32s decodes an F32 tensor into a new slice. It fails if the dtype is not F32 or
// the data length does not match the shape.
func (t *Tensor) Float32s() ([]float32, error) { return values[float32](t, DTypeF32) }

// Float64s decodes an F64 tensor into a new slice.
func (t *Tensor) Float64s() ([]float64, error) { return values[float64](t, DTypeF64) }

// Int8s decodes an I8 tensor into a new slice.
func (t *Tensor) Int8s() ([]int8, error) { return values[int8](t, DTypeI8) }

// Uint8s decodes a U8 tensor into a new slice.
func (t *Tensor) Uint8s() ([]uint8, error) { return values[uint8](t, DTypeU8) }

// Int32s decodes an I32 tensor into a new slice.
func (t *Tensor) Int32s() ([]int32, error) { return values[int32](t, DTypeI32) }

// Int64s decodes an I64 tensor into a new slice.
func (t *Tensor) Int64s() ([]int64, error) { return values[int64](t, DTypeI64) }
