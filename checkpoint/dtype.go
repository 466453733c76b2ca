package checkpoint

// DType is a safetensors element type, spelled as in the file header ("F32", "I8", ...).
type DType string

// The element types this package reads and writes.
const (
	DTypeF64  DType = "F64"
	DTypeF32  DType = "F32"
	DTypeF16  DType = "F16"
	DTypeBF16 DType = "BF16"
	DTypeI64  DType = "I64"
	DTypeI32  DType = "I32"
	DTypeI16  DType = "I16"
	DTypeI8   DType = "I8"
	DTypeU64  DType = "U64"
	DTypeU32  DType = "U32"
	DTypeU16  DType = "U16"
	DTypeU8   DType = "U8"
	DTypeBool DType = "BOOL"
)

// DTypes lists every supported element type.
var DTypes = []DType{
	DTypeF64, DTypeF32, DTypeF16, DTypeBF16,
	DTypeI64, DTypeI32, DTypeI16, DTypeI8,
	DTypeU64, DTypeU32, DTypeU16, DTypeU8,
	DTypeBool,
}

// Size is the number of bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case DTypeF64, DTypeI64, DTypeU64:
		return 8
	case DTypeF32, DTypeI32, DTypeU32:
		return 4
	case DTypeF16, DTypeBF16, DTypeI16, DTypeU16:
		return 2
	case DTypeI8, DTypeU8, DTypeBool:
		return 1
	}
	return 0
}

// Valid reports whether d is one of the supported element types.
func (d DType) Valid() bool { return d.Size() != 0 }
