package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
)

const testdataDir = "../testdata/safetensors"

// readBytes is Read over an in-memory file.
func readBytes(b []byte) (*File, error) {
	return Read(bytes.NewReader(b), int64(len(b)))
}

// mustMarshal encodes f or fails the test.
func mustMarshal(t testing.TB, f *File) []byte {
	t.Helper()
	b, err := Marshal(f)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return b
}

// diffFiles describes the first difference between two files' tensors (as sets) and
// metadata (nil and empty are equal), or returns "".
func diffFiles(a, b *File) string {
	if len(a.Metadata) != len(b.Metadata) || !maps.Equal(a.Metadata, b.Metadata) {
		return fmt.Sprintf("metadata %q != %q", a.Metadata, b.Metadata)
	}
	sa, sb := sortedTensors(a), sortedTensors(b)
	if len(sa) != len(sb) {
		return fmt.Sprintf("%d tensors != %d tensors (%q vs %q)", len(sa), len(sb), a.Names(), b.Names())
	}
	for i := range sa {
		x, y := sa[i], sb[i]
		switch {
		case x.Name != y.Name:
			return fmt.Sprintf("tensor %d: name %q != %q", i, x.Name, y.Name)
		case x.DType != y.DType:
			return fmt.Sprintf("tensor %q: dtype %s != %s", x.Name, x.DType, y.DType)
		case !slices.Equal(x.Shape, y.Shape):
			return fmt.Sprintf("tensor %q: shape %v != %v", x.Name, x.Shape, y.Shape)
		case !bytes.Equal(x.Data, y.Data):
			return fmt.Sprintf("tensor %q: data differs", x.Name)
		}
	}
	return ""
}

func sortedTensors(f *File) []Tensor {
	ts := slices.Clone(f.Tensors)
	slices.SortFunc(ts, func(a, b Tensor) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return ts
}

// rawFile builds a file from a header string and data without any checks or padding.
func rawFile(hdr string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	b = append(b, hdr...)
	return append(b, data...)
}

// withLength builds a file whose length prefix is n, followed by rest.
func withLength(n uint64, rest []byte) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

// le builds little-endian bytes for a list of values.
func le(vals ...any) []byte {
	var b []byte
	for _, v := range vals {
		b, _ = binary.Append(b, binary.LittleEndian, v)
	}
	return b
}

// goldenFile is the content of golden_all_dtypes.safetensors: every dtype, edge values,
// a scalar, an empty tensor and metadata that needs escaping.
func goldenFile() *File {
	f := &File{Metadata: map[string]string{
		"format":     "pt",
		"stage":      "golden",
		"quote\"key": "line\nbreak\ttab \u00e9 \x01",
	}}
	f.Set(F64("t.f64", []int{2, 2}, []float64{1.5, math.Copysign(0, -1), 1e300, -3.25}))
	f.Set(F32("t.f32", []int{2, 3}, []float32{0, 1, -2.5, 3.1415927, 1e-38, -65504}))
	f.Set(Tensor{Name: "t.f16", DType: DTypeF16, Shape: []int{3}, Data: le(uint16(0x3C00), uint16(0xC000), uint16(0x7BFF))})
	f.Set(Tensor{Name: "t.bf16", DType: DTypeBF16, Shape: []int{2}, Data: le(uint16(0x3F80), uint16(0xBF00))})
	f.Set(I64("t.i64", []int{3}, []int64{math.MinInt64, -1, math.MaxInt64}))
	f.Set(I32("t.i32", []int{2}, []int32{math.MinInt32, 123456789}))
	f.Set(Tensor{Name: "t.i16", DType: DTypeI16, Shape: []int{2}, Data: le(int16(-32768), int16(32767))})
	f.Set(I8("t.i8", []int{2, 2}, []int8{-128, -1, 0, 127}))
	f.Set(Tensor{Name: "t.u64", DType: DTypeU64, Shape: []int{1}, Data: le(uint64(math.MaxUint64))})
	f.Set(Tensor{Name: "t.u32", DType: DTypeU32, Shape: []int{1}, Data: le(uint32(4000000000))})
	f.Set(Tensor{Name: "t.u16", DType: DTypeU16, Shape: []int{1}, Data: le(uint16(65535))})
	f.Set(U8("t.u8", []int{3}, []byte{0, 128, 255}))
	f.Set(Tensor{Name: "t.bool", DType: DTypeBool, Shape: []int{2}, Data: []byte{1, 0}})
	f.Set(F32("scalar", nil, []float32{42}))
	f.Set(F32("empty", []int{0, 3}, nil))
	f.Set(F32("caf\u00e9/\"odd\"\\name", []int{1}, []float32{-1}))
	return f
}
