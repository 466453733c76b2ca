package compress

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/quant"
)

// roundTrip encodes f, decodes it and checks the result is the same file, byte
// for byte once written as safetensors; it returns the encoding and its info.
func roundTrip(t *testing.T, f *checkpoint.File) ([]byte, *Info) {
	t.Helper()
	enc, err := Encode(f)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	got, info, err := DecodeInfo(enc, DefaultLimits)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want, err := checkpoint.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	have, err := checkpoint.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, have) {
		t.Fatalf("round trip changed the file:\n%s", describeDiff(f, got))
	}
	return enc, info
}

func describeDiff(a, b *checkpoint.File) string {
	var out bytes.Buffer
	for k, v := range a.Metadata {
		if b.Metadata[k] != v {
			out.WriteString("metadata " + k + " differs\n")
		}
	}
	for _, t := range a.Tensors {
		u, ok := b.Get(t.Name)
		switch {
		case !ok:
			out.WriteString("missing " + t.Name + "\n")
		case u.DType != t.DType || !bytes.Equal(u.Data, t.Data):
			out.WriteString(t.Name + " differs\n")
		}
	}
	return out.String()
}

func section(t *testing.T, info *Info, name string) Section {
	t.Helper()
	for _, s := range info.Sections {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no section %s", name)
	return Section{}
}

// sparseFloats returns n normal values with a share of exact zeros.
func sparseFloats(rng *rand.Rand, n int, sparsity float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		if rng.Float64() >= sparsity {
			v[i] = float32(rng.NormFloat64() * 0.1)
		}
	}
	return v
}

// quantized returns a rows x cols weight quantized at bits with spec, pruned to
// sparsity: the tensors model.ToFile writes for it.
func quantized(rng *rand.Rand, name string, rows, cols int, sparsity float64, spec quant.Spec) []checkpoint.Tensor {
	w := sparseFloats(rng, rows*cols, sparsity)
	shape := []int{rows, cols}
	p := spec.ParamsFor(w, shape)
	q := make([]int32, len(w))
	spec.Quantize(w, p, q)
	scaleShape := []int{1}
	if spec.Granularity == quant.PerChannel {
		scaleShape = []int{rows, 1}
	}
	var out []checkpoint.Tensor
	if spec.Bits <= 4 {
		out = append(out,
			checkpoint.I32(name+".weight_packed", []int{rows, quant.PackedWidth(cols, spec.Bits)}, quant.Pack(q, rows, cols, spec.Bits)),
			checkpoint.I32(name+".weight_shape", []int{2}, []int32{int32(rows), int32(cols)}))
	} else {
		i8 := make([]int8, len(q))
		for i, x := range q {
			i8[i] = int8(x)
		}
		out = append(out, checkpoint.I8(name+".weight", shape, i8))
	}
	out = append(out, checkpoint.F32(name+".weight_scale", scaleShape, p.Scale))
	if spec.Scheme == quant.Asymmetric {
		z := make([]int8, len(p.ZeroPoint))
		for i, x := range p.ZeroPoint {
			z[i] = int8(x)
		}
		out = append(out, checkpoint.I8(name+".weight_zero_point", scaleShape, z))
	}
	return out
}
