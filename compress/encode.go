package compress

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/quant"
)

// Encode returns f in the compressed format. Decode gives back the same
// metadata and the same tensors, byte for byte; every section is checked by
// decoding it before it is kept, and stored raw if that ever fails.
func Encode(f *checkpoint.File) ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if _, _, err := codecs(); err != nil {
		return nil, fmt.Errorf("compress: zstd: %w", err)
	}
	body := encodeBody(f)
	out := append(slices.Clone(Magic), Version, 0)
	return appendBlocks(out, body.b, body.cuts), nil
}

// encodeBody writes the header (metadata, tensor count) and the sections, in
// name order.
func encodeBody(f *checkpoint.File) *writer {
	var w writer
	keys := slices.Sorted(maps.Keys(f.Metadata))
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.str(f.Metadata[k])
	}
	tensors := slices.Clone(f.Tensors)
	sort.Slice(tensors, func(i, j int) bool { return tensors[i].Name < tensors[j].Name })
	w.uvarint(uint64(len(tensors)))
	w.cut()
	bits := layerBits(f.Metadata["compression"])
	for i := range tensors {
		t := &tensors[i]
		w.str(t.Name)
		w.str(string(t.DType))
		w.uvarint(uint64(len(t.Shape)))
		for _, d := range t.Shape {
			w.uvarint(uint64(d))
		}
		enc, payload := encodeTensor(f, t, bits)
		w.u8(enc)
		w.uvarint(uint64(len(payload.b)))
		w.embed(payload)
		w.cut()
	}
	return &w
}

// encodeTensor picks the tensor's encoding and returns its payload, falling
// back to raw bytes unless the payload decodes to exactly t.Data.
func encodeTensor(f *checkpoint.File, t *checkpoint.Tensor, bits map[string]int) (byte, *writer) {
	var w writer
	enc := byte(encRaw)
	switch t.DType {
	case checkpoint.DTypeF32:
		enc = encFloat
		encodeFloats(&w, t.Data)
	case checkpoint.DTypeI8, checkpoint.DTypeI16, checkpoint.DTypeI32:
		enc = encInt
		encodeInts(&w, intsOf(f, t, bits))
	}
	if enc != encRaw {
		out := make([]byte, len(t.Data))
		unlimited := func(int) error { return nil }
		if _, err := decodePayload(enc, w.b, t.DType, t.Shape, out, unlimited); err == nil && bytes.Equal(out, t.Data) {
			return enc, &w
		}
	}
	raw := &writer{}
	raw.cut()
	raw.raw(t.Data)
	return encRaw, raw
}

// intsOf reads an integer tensor's values. A quantized weight (NAME.weight I8,
// or NAME.weight_packed I32 with NAME.weight_shape) takes its zero points as
// backgrounds, so pruned entries (which hold the zero point) cost nothing; a
// packed one is unpacked so its integers, not its words, are coded.
func intsOf(f *checkpoint.File, t *checkpoint.Tensor, bits map[string]int) *ints {
	n := t.NumElements()
	rows := 1
	if len(t.Shape) > 0 {
		rows = t.Shape[0]
	}
	out := &ints{values: make([]int32, n), rows: rows, backgrounds: []int32{0}}
	size := t.DType.Size()
	for i := range out.values {
		switch size {
		case 1:
			out.values[i] = int32(int8(t.Data[i]))
		case 2:
			out.values[i] = int32(int16(binary.LittleEndian.Uint16(t.Data[2*i:])))
		default:
			out.values[i] = int32(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	}
	// A weight's companions are named after it: W_packed, W_shape,
	// W_zero_point (fc1.weight_zero_point, lstm.weight_ih_l0_zero_point).
	var weight string
	switch {
	case strings.HasSuffix(t.Name, "_packed"):
		weight = strings.TrimSuffix(t.Name, "_packed")
		if !unpackInto(f, t, out, weight, bits[layerOf(weight)]) {
			return out
		}
	case t.DType == checkpoint.DTypeI8:
		weight = t.Name
	default:
		return out
	}
	if zp, ok := f.Get(weight + "_zero_point"); ok && rows > 0 {
		if z, err := zp.Int8s(); err == nil && (len(z) == 1 || len(z) == rows) {
			out.backgrounds = make([]int32, len(z))
			for i, v := range z {
				out.backgrounds[i] = int32(v)
			}
		}
	}
	return out
}

// unpackInto replaces out's words by the integers they pack, if the layout is
// recognized: the bit width from the compression metadata, else the first of
// 4, 3, 2 bits that fits the row width (as model's loader reads them).
func unpackInto(f *checkpoint.File, t *checkpoint.Tensor, out *ints, weight string, metaBits int) bool {
	st, ok := f.Get(weight + "_shape")
	if !ok || t.DType != checkpoint.DTypeI32 || len(t.Shape) != 2 || t.Shape[0] == 0 {
		return false
	}
	dims, err := st.Int32s()
	if err != nil || len(dims) == 0 {
		return false
	}
	n := 1
	for _, d := range dims {
		if d < 0 {
			return false
		}
		n *= int(d)
	}
	rows := t.Shape[0]
	if int(dims[0]) != rows || n%rows != 0 {
		return false
	}
	cols := n / rows
	b, ok := quant.PackedBits(cols, t.Shape[1])
	if metaBits >= 1 && metaBits <= 4 {
		b, ok = metaBits, quant.PackedWidth(cols, metaBits) == t.Shape[1]
	}
	if !ok {
		return false
	}
	q, err := quant.Unpack(out.values, rows, cols, b)
	if err != nil {
		return false
	}
	out.values, out.packedBits, out.cols = q, b, cols
	return true
}

// layerOf is the layer a weight belongs to: "fc1" for fc1.weight and
// fc1.0.weight.
func layerOf(weight string) string {
	name, _, _ := strings.Cut(weight, ".")
	return name
}

// layerBits reads each layer's weight bit width from the compression metadata;
// a file without it (or with another shape of it) gives none.
func layerBits(js string) map[string]int {
	var comp map[string]struct {
		Quant *struct {
			Bits int `json:"bits"`
		} `json:"quant"`
	}
	out := map[string]int{}
	if json.Unmarshal([]byte(js), &comp) != nil {
		return out
	}
	for name, c := range comp {
		if c.Quant != nil {
			out[name] = c.Quant.Bits
		}
	}
	return out
}
