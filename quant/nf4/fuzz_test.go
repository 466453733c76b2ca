package nf4

import (
	"encoding/binary"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
)

// FuzzFromTensors builds the tensors of an NF4 weight from fuzzed parts (the quant-state
// JSON, the packed codes' shape, each absmax tensor's dtype and bytes, which tensors are
// there) and asserts: FromTensors never panics; a refusal names a tensor; an accepted weight
// dequantizes without error and writes back to tensors that read to the same weight.
func FuzzFromTensors(f *testing.F) {
	// Seeds: every tensor set of the reference vectors, and the edits of the table test.
	vec := vectors(f)
	for _, c := range cases(vec) {
		for _, layout := range []string{"nf4", "dq"} {
			p := c + "." + layout + ".weight"
			st, _ := vec.Get(p + suffixState)
			w, _ := vec.Get(p)
			am, _ := vec.Get(p + suffixAbsmax)
			na, ok := vec.Get(p + suffixNestedAbsmax)
			var naData []byte
			if ok {
				naData = na.Data
			}
			kind := uint8(0) // F32 absmax
			if layout == "dq" {
				kind = 1 // U8 codes
			}
			f.Add(st.Data, uint32(w.Shape[0]), kind, am.Data, naData, uint8(0), layout == "dq")
		}
	}
	f.Add([]byte(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [3]}`), uint32(2), uint8(0), []byte{0, 0, 128, 63}, []byte(nil), uint8(0), false)
	f.Add([]byte(`{"quant_type": "nf4", "blocksize": 32, "dtype": "bfloat16", "shape": [1, 33], "nested_blocksize": 32, "nested_dtype": "float32", "nested_offset": -1e-05}`), uint32(17), uint8(1), []byte{0, 255}, []byte{0, 0, 0, 64}, uint8(0), true)

	f.Fuzz(func(t *testing.T, state []byte, packedRows uint32, amKind uint8, amData, naData []byte, drop uint8, nested bool) {
		const name = "m.weight"
		file := &checkpoint.File{}
		packedRows %= 1 << 16
		file.Set(checkpoint.U8(name, []int{int(packedRows), 1}, make([]byte, packedRows)))
		file.Set(checkpoint.U8(name+suffixState, []int{len(state)}, state))
		file.Set(rawTensor(name+suffixAbsmax, amKind, amData))
		file.Set(checkpoint.F32(name+suffixQuantMap, []int{16}, Code[:]))
		if nested {
			file.Set(rawTensor(name+suffixNestedAbsmax, 0, naData))
			m := DynamicMap()
			file.Set(checkpoint.F32(name+suffixNestedQuantMap, []int{256}, m[:]))
		}
		if int(drop) < len(file.Tensors) && drop%2 == 1 {
			file.Tensors = slices.Delete(file.Tensors, int(drop), int(drop)+1)
		}

		q, err := FromTensors(file, name)
		if err != nil {
			if !strings.HasPrefix(err.Error(), `nf4: tensor "`+name) {
				t.Fatalf("error without a tensor name: %v", err)
			}
			return
		}
		out := make([]float32, q.Len())
		if err := q.Dequantize(out); err != nil {
			t.Fatalf("accepted, then Dequantize: %v", err)
		}
		ts, err := q.Tensors(name)
		if err != nil {
			t.Fatalf("accepted, then Tensors: %v", err)
		}
		again, err := FromTensors(&checkpoint.File{Tensors: ts}, name)
		if err != nil {
			t.Fatalf("written back, then refused: %v", err)
		}
		if !reflect.DeepEqual(q, again) {
			t.Fatalf("written back and read: %+v, was %+v", again, q)
		}
	})
}

// rawTensor is a 1-D tensor of data's bytes, F32 (kind%3 == 0, whole floats only), U8
// (1) or I8 (2).
func rawTensor(name string, kind uint8, data []byte) checkpoint.Tensor {
	switch kind % 3 {
	case 1:
		return checkpoint.U8(name, []int{len(data)}, data)
	case 2:
		v := make([]int8, len(data))
		for i, b := range data {
			v[i] = int8(b)
		}
		return checkpoint.I8(name, []int{len(v)}, v)
	}
	v := make([]float32, len(data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return checkpoint.F32(name, []int{len(v)}, v)
}
