package compress

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
)

// storedFile wraps a hand-written body in one stored block, as Encode would
// if coding did not pay.
func storedFile(body []byte) []byte {
	out := append(slices.Clone(Magic), Version, 0)
	out = binary.AppendUvarint(out, uint64(len(body)))
	out = binary.AppendUvarint(out, 1)
	out = append(out, blockStored)
	out = binary.AppendUvarint(out, uint64(len(body)))
	out = append(out, body...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, castagnoli))
}

// body writes a header with no metadata and then the given sections.
func body(sections ...func(w *writer)) []byte {
	var w writer
	w.uvarint(0)
	w.uvarint(uint64(len(sections)))
	for _, s := range sections {
		s(&w)
	}
	return w.b
}

// sec writes a section's fields before its payload.
func sec(name, dtype string, shape []int, enc byte, payload []byte) func(w *writer) {
	return func(w *writer) {
		w.str(name)
		w.str(dtype)
		w.uvarint(uint64(len(shape)))
		for _, d := range shape {
			w.uvarint(uint64(d))
		}
		w.u8(enc)
		w.uvarint(uint64(len(payload)))
		w.raw(payload)
	}
}

func TestMalformed(t *testing.T) {
	good := &checkpoint.File{}
	good.Set(checkpoint.F32("w", []int{4}, []float32{1, 0, 0, 2}))
	enc, err := Encode(good)
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(enc)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"safetensors", []byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}'}, "no SHKZ magic"},
		{"newer version", append(slices.Clone(Magic), 2, 0, 0), "format version 2"},
		{"reserved byte", append(slices.Clone(Magic), 1, 7, 0), "reserved header byte"},
		{"header cut", slices.Clone(Magic), "ends inside its header"},
		{"body too large", append(append(slices.Clone(Magic), 1, 0), binary.AppendUvarint(nil, 1<<40)...), "the body claims 1099511627776 bytes"},
		{"checksum", flipped, "checksum mismatch"},
		{"trailing bytes", append(slices.Clone(enc), 0), "after the checksum"},
		{"cut in a block", enc[:len(enc)-6], ""},
		{"unknown dtype", storedFile(body(sec("w", "F8", []int{1}, encRaw, []byte{1}))), `unknown dtype "F8"`},
		{"raw length", storedFile(body(sec("w", "U8", []int{3}, encRaw, []byte{1}))), "raw payload of 1 bytes for 3"},
		{"huge shape", storedFile(body(sec("w", "F32", []int{1 << 20, 1 << 20}, encRaw, nil))), "more than the"},
		{"unknown encoding", storedFile(body(sec("w", "U8", []int{1}, 9, []byte{1}))), "unknown encoding 9"},
		{"float encoding of ints", storedFile(body(sec("w", "I8", []int{1}, encFloat, []byte{0, 4, 0, 0, 0, 0}))), "float encoding for dtype I8"},
		{"gap past the end", storedFile(body(sec("w", "F32", []int{4}, encFloat, []byte{structGaps, 4, 1, 9, valuesF32, 1, 2, 3, 4}))), "past the tensor"},
		{"values missing", storedFile(body(sec("w", "F32", []int{4}, encFloat, []byte{structBitmask, 0x0f, valuesF32, 1, 2, 3, 4}))), "keeps more elements"},
		{"values left over", storedFile(body(sec("w", "F32", []int{4}, encFloat, []byte{structBitmask, 0x01, valuesF32, 1, 2, 3, 4, 5, 6, 7, 8}))), "2 values stored, the structure keeps 1"},
		{"int out of range", storedFile(body(sec("w", "I8", []int{1}, encInt, []byte{layoutElements, 9, 1, 0, structDense, valuesPacked, 0xff, 0x01}))), "outside"},
		{"backgrounds per row", storedFile(body(sec("w", "I8", []int{2, 2}, encInt, []byte{layoutElements, 2, 3, 0, 0, 0, structDense, valuesPacked, 0}))), "3 backgrounds for 2 rows"},
		{"packed shape", storedFile(body(sec("w", "I32", []int{1, 5}, encInt, []byte{layoutPacked, 4, 8, 4, 1, 0, structDense, valuesPacked, 0, 0, 0, 0}))), "cannot make I32"},
		{"names out of order", storedFile(body(sec("b", "U8", []int{1}, encRaw, []byte{1}), sec("a", "U8", []int{1}, encRaw, []byte{1}))), "out of name order"},
		{"bytes after sections", storedFile(append(body(), 0)), "after the last section"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeInfo(tc.file, fuzzLimits)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), "compress: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to mention %q", err, tc.want)
			}
		})
	}
}
