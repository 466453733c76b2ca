package compress

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/quant"
)

func TestRoundTripFloats(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name      string
		values    []float32
		structure string // the section's encoding must start with this
	}{
		{"dense", sparseFloats(rng, 3000, 0), "float: dense, 3000 f32"},
		{"half pruned", sparseFloats(rng, 3000, 0.5), "float: bitmask"},
		{"99% pruned", sparseFloats(rng, 30000, 0.99), "float: gaps/"},
		{"all pruned", make([]float32, 1000), "float:"},
		{"lossless f16", []float32{0, 1, -2, 0.5, 65504, 1.0 / (1 << 24), 0, 3.140625}, "float: dense, 8 f16"},
		{"negative zeros kept", []float32{float32(math.Copysign(0, -1)), 0, 0, 0, 1.1, 0, 0, 0}, "float:"},
		{"specials", []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.MaxFloat32, math.SmallestNonzeroFloat32}, "float: dense, 5 f32"},
		{"empty", nil, "float: dense, 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &checkpoint.File{Metadata: map[string]string{"format": "shrink/v1"}}
			f.Set(checkpoint.F32("w", []int{len(tc.values)}, tc.values))
			enc, info := roundTrip(t, f)
			if s := section(t, info, "w"); !strings.HasPrefix(s.Encoding, tc.structure) {
				t.Errorf("encoding %q, want %q...", s.Encoding, tc.structure)
			}
			if tc.name == "all pruned" && len(enc) > 80 {
				t.Errorf("1000 zeros take %d bytes", len(enc))
			}
		})
	}
}

// A signalling NaN's payload and a -0 survive (bits, not values, are compared
// by roundTrip; this checks the test data really holds them).
func TestRoundTripKeepsFloatBits(t *testing.T) {
	bits := []uint32{0x80000000, 0x7f800001, 0xffc00123, 0x00000001, 0x7f7fffff}
	v := make([]float32, len(bits))
	for i, b := range bits {
		v[i] = math.Float32frombits(b)
	}
	f := &checkpoint.File{}
	f.Set(checkpoint.F32("w", []int{len(v)}, v))
	enc, _ := roundTrip(t, f)
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	vals, _ := got.Tensors[0].Float32s()
	for i, x := range vals {
		if math.Float32bits(x) != bits[i] {
			t.Errorf("value %d: %08x, want %08x", i, math.Float32bits(x), bits[i])
		}
	}
}

func TestRoundTripQuantized(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	sym := func(bits int, g quant.Granularity) quant.Spec {
		return quant.Spec{Bits: bits, Scheme: quant.Symmetric, Granularity: g}
	}
	asym := func(bits int, g quant.Granularity) quant.Spec {
		return quant.Spec{Bits: bits, Scheme: quant.Asymmetric, Granularity: g}
	}
	tests := []struct {
		name     string
		spec     quant.Spec
		sparsity float64
		meta     string // compression metadata; "" for none
		encoding string // of the weight's section
	}{
		{"int8 per channel", sym(8, quant.PerChannel), 0, "", "int: dense, 1200 int8"},
		{"int8 asymmetric per tensor", asym(8, quant.PerTensor), 0, "", "int: dense, 1200 int8 values, zero point"},
		{"int8 asymmetric per channel pruned", asym(8, quant.PerChannel), 0.9, "", "int: gaps/"},
		{"int6 pruned", sym(6, quant.PerChannel), 0.7, `{"l":{"quant":{"bits":6}}}`, "int: gaps/2"},
		{"int4 packed", sym(4, quant.PerChannel), 0, `{"l":{"quant":{"bits":4}}}`, "int: dense, 1200 int4 values"},
		{"int4 packed no metadata", sym(4, quant.PerTensor), 0.5, "", "int: bitmask"},
		{"int3 packed pruned", asym(3, quant.PerChannel), 0.92, `{"l":{"quant":{"bits":3}}}`, "int: gaps/"},
		{"int2 packed (zeros are background)", sym(2, quant.PerTensor), 0, `{"l":{"quant":{"bits":2}}}`, "int: gaps/2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &checkpoint.File{Metadata: map[string]string{}}
			if tc.meta != "" {
				f.Metadata["compression"] = tc.meta
			}
			for _, x := range quantized(rng, "l", 30, 40, tc.sparsity, tc.spec) {
				f.Set(x)
			}
			f.Set(checkpoint.F32("l.bias", []int{30}, sparseFloats(rng, 30, 0)))
			_, info := roundTrip(t, f)
			name := "l.weight"
			if tc.spec.Bits <= 4 {
				name = "l.weight_packed"
			}
			if s := section(t, info, name); !strings.HasPrefix(s.Encoding, tc.encoding) {
				t.Errorf("encoding %q, want %q...", s.Encoding, tc.encoding)
			}
		})
	}
}

func TestRoundTripOtherTensors(t *testing.T) {
	f := &checkpoint.File{Metadata: map[string]string{"caf\u00e9": "\U0001F600 \"quoted\"\n", "": ""}}
	f.Set(checkpoint.F64("f64", []int{3}, []float64{1, math.Pi, -0}))
	f.Set(checkpoint.U8("u8", []int{2, 2}, []byte{0, 255, 7, 0}))
	f.Set(checkpoint.I64("i64", []int{2}, []int64{math.MinInt64, 3}))
	f.Set(checkpoint.I32("i32", []int{4}, []int32{math.MinInt32, math.MaxInt32, 0, -1}))
	f.Set(checkpoint.I32("scalar", nil, []int32{42}))
	f.Set(checkpoint.F32("zero rows", []int{0, 5}, nil))
	f.Set(checkpoint.I8("no cols", []int{3, 0}, nil))
	f.Set(checkpoint.Tensor{Name: "i16", DType: checkpoint.DTypeI16, Shape: []int{2}, Data: []byte{0xff, 0x7f, 0x00, 0x80}})
	f.Set(checkpoint.Tensor{Name: "bool", DType: checkpoint.DTypeBool, Shape: []int{3}, Data: []byte{1, 0, 1}})
	// A packed weight whose padding bits are set cannot be rebuilt by packing:
	// it must still come back exactly (stored as integers or raw).
	f.Set(checkpoint.I32("odd.weight_packed", []int{1, 1}, []int32{-1}))
	f.Set(checkpoint.I32("odd.weight_shape", []int{2}, []int32{1, 7}))
	_, info := roundTrip(t, f)
	if s := section(t, info, "u8"); s.Encoding != "raw" {
		t.Errorf("u8: %q, want raw", s.Encoding)
	}
}

// The point of the format: a pruned 4-bit layer codes close to the order-0
// entropy of its positions and values.
func TestSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	spec := quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
	f := &checkpoint.File{Metadata: map[string]string{"compression": `{"fc1":{"quant":{"bits":4}}}`}}
	for _, x := range quantized(rng, "fc1", 300, 784, 0.92, spec) {
		f.Set(x)
	}
	enc, info := roundTrip(t, f)
	packed, _ := f.Get("fc1.weight_packed")
	words, _ := packed.Int32s()
	q, _ := quant.Unpack(words, 300, 784, 4)
	hist := map[int32]int{}
	kept := 0
	for _, v := range q {
		if v != 0 {
			hist[v]++
			kept++
		}
	}
	entropy := func(counts ...int) float64 { // bits per symbol
		total, h := 0, 0.0
		for _, c := range counts {
			total += c
		}
		for _, c := range counts {
			if c > 0 {
				p := float64(c) / float64(total)
				h -= p * math.Log2(p)
			}
		}
		return h
	}
	var counts []int
	for _, c := range hist {
		counts = append(counts, c)
	}
	bits := float64(len(q))*entropy(kept, len(q)-kept) + float64(kept)*entropy(counts...)
	bound := int(1.05*bits/8) + 4*300 // 5% over the entropy, plus the scales
	t.Logf("%d bytes (body %d), %.1fx smaller than F32; entropy %.0f bytes; sections %+v",
		len(enc), info.BodyBytes, float64(4*len(q))/float64(len(enc)), bits/8, info.Sections)
	if len(enc) > bound {
		t.Errorf("compressed to %d bytes, want at most %d", len(enc), bound)
	}
}

func TestDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	f := &checkpoint.File{Metadata: map[string]string{"b": "2", "a": "1"}}
	f.Set(checkpoint.F32("z", []int{500}, sparseFloats(rng, 500, 0.8)))
	f.Set(checkpoint.F32("a", []int{500}, sparseFloats(rng, 500, 0)))
	a, err := Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	f.Tensors[0], f.Tensors[1] = f.Tensors[1], f.Tensors[0]
	b, err := Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("the same file (tensors in another order) encodes differently")
	}
}

func TestF16(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := widenF16(uint16(h))
		back, ok := f16Exact(f)
		if !ok || back != uint16(h) {
			t.Fatalf("f16 %04x widens to %08x, which narrows to %04x (exact %v)", h, f, back, ok)
		}
		exp, mant := h>>10&0x1f, h&0x3ff
		if exp == 0x1f {
			continue
		}
		// The value from its definition: (-1)^s * mant * 2^-24 (subnormal) or
		// (1024 + mant) * 2^(exp-25).
		want := float64(mant) * math.Pow(2, -24)
		if exp > 0 {
			want = float64(1024+mant) * math.Pow(2, float64(exp)-25)
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if got := math.Float32frombits(f); float64(got) != want || math.Signbit(float64(got)) != (h&0x8000 != 0) {
			t.Fatalf("f16 %04x widens to %g, want %g", h, got, want)
		}
	}
	for _, v := range []float32{0.1, 1 + 1.0/(1<<11), 65520, 1.0 / (1 << 25), 3e-8} {
		if _, ok := f16Exact(math.Float32bits(v)); ok {
			t.Errorf("%g claimed exact in f16", v)
		}
	}
}

func TestBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var w bitWriter
	type field struct {
		v     uint64
		width uint
	}
	var fields []field
	for range 2000 {
		width := uint(1 + rng.IntN(40))
		v := rng.Uint64() & (1<<width - 1)
		fields = append(fields, field{v, width})
		w.write(v, width)
	}
	r := bitReader{b: w.bytes()}
	for i, f := range fields {
		got, err := r.read(f.width)
		if err != nil || got != f.v {
			t.Fatalf("field %d: %x, %v; want %x", i, got, err, f.v)
		}
	}
	if _, err := r.read(9); err == nil {
		t.Error("read past the end")
	}
}
