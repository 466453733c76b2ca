package nf4

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/shrink-ml/shrink/checkpoint"
)

// The tensors of an NF4 weight NAME, as bitsandbytes' Linear4bit._save_to_state_dict names
// them: NAME itself holds the packed codes, NAME + "." + each key of
// QuantState.as_dict(packed=True) the rest.
const (
	suffixAbsmax         = ".absmax"
	suffixQuantMap       = ".quant_map"
	suffixNestedAbsmax   = ".nested_absmax"
	suffixNestedQuantMap = ".nested_quant_map"
	suffixState          = ".quant_state.bitsandbytes__nf4"
	suffixStateFP4       = ".quant_state.bitsandbytes__fp4"
)

// Is reports whether f holds an NF4 weight named name (its quant-state tensor is there).
func Is(f *checkpoint.File, name string) bool {
	_, ok := f.Get(name + suffixState)
	return ok
}

// state is the JSON of NAME.quant_state.bitsandbytes__nf4: the non-tensor items of
// QuantState.as_dict, packed by pack_dict_to_tensor (json.dumps, UTF-8).
type state struct {
	QuantType       string
	Blocksize       int
	DType           string
	Shape           []int
	Nested          bool
	NestedBlocksize int
	NestedDType     string
	NestedOffset    float32
}

// stateJSON is the quant-state JSON with the bytes Python's json.dumps gives: keys in
// as_dict's order, ", " and ": " separators, the offset as Python's repr of
// offset.item() (the float32 widened to float64).
func (q *Weight) stateJSON() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"quant_type": "nf4", "blocksize": %d, "dtype": %s, "shape": [`, q.Blocksize, jsonString(q.DType))
	for i, d := range q.Shape {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(d))
	}
	b.WriteByte(']')
	if nq := q.Nested; nq != nil {
		fmt.Fprintf(&b, `, "nested_blocksize": %d, "nested_dtype": %s, "nested_offset": %s`,
			nq.Blocksize, jsonString(nq.DType), pyFloat(float64(nq.Offset)))
	}
	b.WriteByte('}')
	return b.Bytes()
}

// jsonString quotes s as json.dumps does for the ASCII dtype names it meets here.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Tensors returns the safetensors tensors of the weight named name (e.g. "fc1.weight"), with
// the names, dtypes and shapes bitsandbytes and transformers write for a Linear4bit:
//
//	name                                U8  [ceil(n/2), 1]  packed codes
//	name.absmax                         F32 [blocks]        (U8 [blocks] codes when double-quantized)
//	name.quant_map                      F32 [16]            Code
//	name.nested_absmax                  F32 [ceil(blocks/256)]   double quantization only
//	name.nested_quant_map               F32 [256]           double quantization only
//	name.quant_state.bitsandbytes__nf4  U8  [len]           UTF-8 JSON
func (q *Weight) Tensors(name string) ([]checkpoint.Tensor, error) {
	if err := q.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ts := []checkpoint.Tensor{checkpoint.U8(name, []int{len(q.Packed), 1}, q.Packed)}
	if nq := q.Nested; nq != nil {
		ts = append(ts, checkpoint.U8(name+suffixAbsmax, []int{len(nq.Codes)}, nq.Codes))
	} else {
		ts = append(ts, checkpoint.F32(name+suffixAbsmax, []int{len(q.Absmax)}, q.Absmax))
	}
	ts = append(ts, checkpoint.F32(name+suffixQuantMap, []int{16}, Code[:]))
	if nq := q.Nested; nq != nil {
		ts = append(ts,
			checkpoint.F32(name+suffixNestedAbsmax, []int{len(nq.Absmax)}, nq.Absmax),
			checkpoint.F32(name+suffixNestedQuantMap, []int{256}, nq.Map[:]))
	}
	js := q.stateJSON()
	ts = append(ts, checkpoint.U8(name+suffixState, []int{len(js)}, js))
	return ts, nil
}

// The dtypes bitsandbytes' quantize_4bit accepts for the weight.
var weightDTypes = []string{"float32", "float16", "bfloat16"}

// FromTensors reads the NF4 weight named name from f (the tensors Tensors lists). It checks
// everything bitsandbytes' QuantState.from_dict and dequantize_4bit rely on and every
// consistency between the tensors; each error names the tensor at fault. Extra tensors
// named name.* are refused, as from_dict refuses unknown keys.
func FromTensors(f *checkpoint.File, name string) (*Weight, error) {
	fail := func(tensor, format string, args ...any) error {
		return fmt.Errorf("nf4: tensor %q: %s", tensor, fmt.Sprintf(format, args...))
	}
	if _, ok := f.Get(name + suffixStateFP4); ok {
		return nil, fail(name+suffixStateFP4, "FP4 weights are not supported; quantize with quant_type nf4")
	}
	stName := name + suffixState
	stT, ok := f.Get(stName)
	if !ok {
		return nil, fail(stName, "missing: %q is not an NF4 weight (bitsandbytes writes this quant-state tensor beside it)", name)
	}
	js, err := u8Vector(stT)
	if err != nil {
		return nil, fail(stName, "%v", err)
	}
	st, err := parseState(js)
	if err != nil {
		return nil, fail(stName, "%v", err)
	}
	n, _ := numel(st.Shape) // parseState checked it
	blocks := ceilDiv(n, st.Blocksize)

	// Known tensors only: an unknown name.* key is what from_dict's assertion refuses.
	allowed := []string{name + suffixAbsmax, name + suffixQuantMap, stName}
	if st.Nested {
		allowed = append(allowed, name+suffixNestedAbsmax, name+suffixNestedQuantMap)
	}
	for i := range f.Tensors {
		tn := f.Tensors[i].Name
		if strings.HasPrefix(tn, name+".") && !slices.Contains(allowed, tn) {
			if !st.Nested && (tn == name+suffixNestedAbsmax || tn == name+suffixNestedQuantMap) {
				return nil, fail(tn, "present, but the quant state has no nested_* keys: the weight is not double-quantized")
			}
			return nil, fail(tn, "unexpected beside NF4 weight %q (known: %s)", name, strings.Join(allowed, ", "))
		}
	}

	q := &Weight{Shape: st.Shape, Blocksize: st.Blocksize, DType: st.DType}
	wT, ok := f.Get(name)
	if !ok {
		return nil, fail(name, "missing: the packed NF4 codes")
	}
	if wT.DType != checkpoint.DTypeU8 {
		return nil, fail(name, "dtype %s: the packed codes must be U8 (other quant_storage dtypes are not supported)", wT.DType)
	}
	if want := []int{ceilDiv(n, 2), 1}; !slices.Equal(wT.Shape, want) {
		return nil, fail(name, "shape %v: %d elements %v pack into %v", wT.Shape, n, st.Shape, want)
	}
	if q.Packed, err = wT.Uint8s(); err != nil {
		return nil, fail(name, "%v", err)
	}

	qmName := name + suffixQuantMap
	qm, err := floatVector(f, qmName, 16)
	if err != nil {
		return nil, err
	}
	for k := range qm {
		// bitsandbytes' kernels dequantize with their built-in table, not this tensor: a
		// different map would read back differently there.
		if math.Float32bits(qm[k]) != math.Float32bits(Code[k]) {
			return nil, fail(qmName, "entry %d is %v, NF4 has %v: not the NF4 map", k, qm[k], Code[k])
		}
	}

	amName := name + suffixAbsmax
	amT, ok := f.Get(amName)
	if !ok {
		return nil, fail(amName, "missing: the block absmax values")
	}
	if !slices.Equal(amT.Shape, []int{blocks}) {
		return nil, fail(amName, "shape %v: %d elements in blocks of %d need [%d]", amT.Shape, n, st.Blocksize, blocks)
	}
	if !st.Nested {
		if amT.DType != checkpoint.DTypeF32 {
			return nil, fail(amName, "dtype %s: must be F32 (U8 only with nested_* quant-state keys)", amT.DType)
		}
		if q.Absmax, err = amT.Float32s(); err != nil {
			return nil, fail(amName, "%v", err)
		}
		if err := nonNegativeFinite(q.Absmax); err != nil {
			return nil, fail(amName, "%v", err)
		}
		return q, nil
	}

	nq := &Nested{Blocksize: st.NestedBlocksize, Offset: st.NestedOffset, DType: st.NestedDType}
	if amT.DType != checkpoint.DTypeU8 {
		return nil, fail(amName, "dtype %s: a double-quantized absmax is U8 codes", amT.DType)
	}
	if nq.Codes, err = amT.Uint8s(); err != nil {
		return nil, fail(amName, "%v", err)
	}
	naName := name + suffixNestedAbsmax
	if nq.Absmax, err = floatVector(f, naName, ceilDiv(blocks, nq.Blocksize)); err != nil {
		return nil, err
	}
	if err := nonNegativeFinite(nq.Absmax); err != nil {
		return nil, fail(naName, "%v", err)
	}
	nmName := name + suffixNestedQuantMap
	nm, err := floatVector(f, nmName, 256)
	if err != nil {
		return nil, err
	}
	for k, v := range nm {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fail(nmName, "entry %d is %v", k, v)
		}
	}
	copy(nq.Map[:], nm)
	q.Nested = nq
	return q, nil
}

// floatVector reads the F32 tensor name, which must have shape [n].
func floatVector(f *checkpoint.File, name string, n int) ([]float32, error) {
	t, ok := f.Get(name)
	if !ok {
		return nil, fmt.Errorf("nf4: tensor %q: missing", name)
	}
	if t.DType != checkpoint.DTypeF32 || !slices.Equal(t.Shape, []int{n}) {
		return nil, fmt.Errorf("nf4: tensor %q: %s %v, want F32 [%d]", name, t.DType, t.Shape, n)
	}
	v, err := t.Float32s()
	if err != nil {
		return nil, fmt.Errorf("nf4: tensor %q: %v", name, err)
	}
	return v, nil
}

// u8Vector reads a 1-D U8 tensor.
func u8Vector(t *checkpoint.Tensor) ([]byte, error) {
	if t.DType != checkpoint.DTypeU8 || len(t.Shape) != 1 {
		return nil, fmt.Errorf("%s %v: the packed quant state is a 1-D U8 tensor of UTF-8 JSON", t.DType, t.Shape)
	}
	return t.Uint8s()
}

// clip shortens b for an error message.
func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

func nonNegativeFinite(v []float32) error {
	for i, x := range v {
		if !(x >= 0) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("value %d is %v: an absmax is finite and >= 0", i, x)
		}
	}
	return nil
}

// parseState decodes and checks the quant-state JSON. Keys are those QuantState.as_dict
// packs; the nested_* keys come all together or not at all.
func parseState(js []byte) (*state, error) {
	if !utf8.Valid(js) {
		return nil, errors.New("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	// json.loads allows only JSON whitespace after the value.
	if rest := bytes.Trim(js[dec.InputOffset():], " \t\n\r"); len(rest) > 0 {
		return nil, fmt.Errorf("text after the JSON object: %q", clip(rest))
	}
	known := []string{"quant_type", "blocksize", "dtype", "shape", "nested_blocksize", "nested_dtype", "nested_offset"}
	for k := range raw {
		if !slices.Contains(known, k) {
			return nil, fmt.Errorf("unknown key %q (bitsandbytes packs %s)", k, strings.Join(known, ", "))
		}
	}
	st := &state{}
	str := func(key string) (string, error) {
		v, ok := raw[key]
		if !ok {
			return "", fmt.Errorf("key %q missing", key)
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("key %q: %s is not a string", key, v)
		}
		return s, nil
	}
	integer := func(key string) (int, error) {
		v, ok := raw[key]
		if !ok {
			return 0, fmt.Errorf("key %q missing", key)
		}
		i, err := strconv.Atoi(string(v))
		if err != nil {
			return 0, fmt.Errorf("key %q: %s is not an integer", key, v)
		}
		return i, nil
	}
	var err error
	if st.QuantType, err = str("quant_type"); err != nil {
		return nil, err
	}
	if st.QuantType != "nf4" {
		return nil, fmt.Errorf("quant_type %q: only nf4 is supported (and the tensor name says nf4)", st.QuantType)
	}
	if st.Blocksize, err = integer("blocksize"); err != nil {
		return nil, err
	}
	if !validBlocksize(st.Blocksize) {
		return nil, fmt.Errorf("blocksize %d: bitsandbytes uses 32, 64, ..., 4096", st.Blocksize)
	}
	if st.DType, err = str("dtype"); err != nil {
		return nil, err
	}
	if !slices.Contains(weightDTypes, st.DType) {
		return nil, fmt.Errorf("dtype %q: want one of %s", st.DType, strings.Join(weightDTypes, ", "))
	}
	shapeRaw, ok := raw["shape"]
	if !ok {
		return nil, errors.New(`key "shape" missing`)
	}
	var shape []json.RawMessage // not json.Number, which also takes "67" in quotes
	if err := json.Unmarshal(shapeRaw, &shape); err != nil || shape == nil {
		return nil, fmt.Errorf("shape %s is not a list of integers", shapeRaw)
	}
	for _, d := range shape {
		i, err := strconv.Atoi(string(d))
		if err != nil {
			return nil, fmt.Errorf("shape %s: %s is not an integer", shapeRaw, d)
		}
		st.Shape = append(st.Shape, i)
	}
	if _, err := numel(st.Shape); err != nil {
		return nil, err
	}

	nestedKeys := 0
	for _, k := range known[4:] {
		if _, ok := raw[k]; ok {
			nestedKeys++
		}
	}
	switch nestedKeys {
	case 0:
		return st, nil
	case 3:
	default:
		return nil, errors.New("nested_blocksize, nested_dtype and nested_offset come together (double quantization) or not at all")
	}
	st.Nested = true
	if st.NestedBlocksize, err = integer("nested_blocksize"); err != nil {
		return nil, err
	}
	if !validBlocksize(st.NestedBlocksize) {
		return nil, fmt.Errorf("nested_blocksize %d: bitsandbytes uses 32, 64, ..., 4096", st.NestedBlocksize)
	}
	if st.NestedDType, err = str("nested_dtype"); err != nil {
		return nil, err
	}
	if st.NestedDType != "float32" {
		return nil, fmt.Errorf("nested_dtype %q: the absmax values are float32", st.NestedDType)
	}
	// Python: torch.tensor(float(text)), a float64 rounded to float32.
	off := raw["nested_offset"]
	if len(off) == 0 || (off[0] != '-' && (off[0] < '0' || off[0] > '9')) {
		return nil, fmt.Errorf("nested_offset %s is not a number", off)
	}
	o, err := strconv.ParseFloat(string(off), 64)
	if err != nil || math.IsInf(float64(float32(o)), 0) {
		return nil, fmt.Errorf("nested_offset %s is not a finite float32", off)
	}
	st.NestedOffset = float32(o)
	return st, nil
}
