package model_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
)

// quantized builds a small model whose layers are quantized with spec (weights
// snapped to the grid, as the quantize stage leaves them) and returns it with the
// integers each weight's observer gives, computed from the float weights.
func quantized(t *testing.T, a arch.Spec, spec quant.Spec, input *model.ActQuant) (*model.Model, map[string][]int32) {
	t.Helper()
	m := model.MustNew(a, rand.New(rand.NewPCG(11, 12)))
	want := map[string][]int32{}
	for _, l := range m.WeightLayers() {
		l.Quant = &spec
		for _, w := range l.Weights {
			p := spec.ParamsFor(w.Data, w.Shape)
			q := make([]int32, len(w.Data))
			spec.Quantize(w.Data, p, q)
			want[w.Name] = q
			w.QParams = &p
			spec.FakeQuantize(w.Data, p, w.Data)
		}
		if input != nil {
			in := *input
			if in.Mode == "static" {
				in.RangeMin, in.RangeMax = -0.5, 3
				in.Params = in.Spec.Observe([]float32{in.RangeMin}, []float32{in.RangeMax})
			}
			l.Input = &in
		}
	}
	return m, want
}

// roundTrip saves and reloads the model, returning the file's bytes too.
func roundTrip(t *testing.T, m *model.Model) (*checkpoint.File, []byte, *model.Model) {
	t.Helper()
	read, back := testkit.SaveAndLoad(t, m)
	b, err := checkpoint.Marshal(read)
	if err != nil {
		t.Fatal(err)
	}
	return read, b, back
}

// storedInts reads a weight's integers as the file holds them: I8, or unpacked
// from the I32 words.
func storedInts(t *testing.T, f *checkpoint.File, p string, shape []int, bits int) []int32 {
	t.Helper()
	if bits <= 4 {
		pk, ok := f.Get(p + ".weight_packed")
		if !ok {
			t.Fatalf("%s: %d bits but no %s.weight_packed", p, bits, p)
		}
		if _, ok := f.Get(p + ".weight"); ok {
			t.Errorf("%s: packed layer also has %s.weight", p, p)
		}
		st, _ := f.Get(p + ".weight_shape")
		if st == nil || st.DType != checkpoint.DTypeI32 || !slices.Equal(st.Shape, []int{len(shape)}) {
			t.Fatalf("%s.weight_shape: want I32 [%d]", p, len(shape))
		}
		dims, _ := st.Int32s()
		for i, d := range dims {
			if int(d) != shape[i] {
				t.Errorf("%s.weight_shape = %v, want %v", p, dims, shape)
			}
		}
		rows, cols := shape[0], 1
		for _, d := range shape[1:] {
			cols *= d
		}
		if pk.DType != checkpoint.DTypeI32 || !slices.Equal(pk.Shape, []int{rows, quant.PackedWidth(cols, bits)}) {
			t.Fatalf("%s.weight_packed is %s %v, want I32 [%d %d]", p, pk.DType, pk.Shape, rows, quant.PackedWidth(cols, bits))
		}
		words, _ := pk.Int32s()
		q, err := quant.Unpack(words, rows, cols, bits)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	w, ok := f.Get(p + ".weight")
	if !ok || w.DType != checkpoint.DTypeI8 || !slices.Equal(w.Shape, shape) {
		t.Fatalf("%s.weight: want I8 %v", p, shape)
	}
	v, _ := w.Int8s()
	q := make([]int32, len(v))
	for i, x := range v {
		q[i] = int32(x)
	}
	return q
}

// A checkpoint of each kind stores the observer's integers in the spec's layout
// and reads back to the same integers, parameters and values; saving the loaded
// model again gives the same bytes; the model computes the same logits.
func TestQuantizedCheckpointRoundTrip(t *testing.T) {
	mlp := arch.Spec{Arch: "mlp", Inputs: 13, Hidden: []int{9}, Classes: 5}
	lenet := arch.Spec{Arch: "lenet5", Classes: 10}
	static := func(s quant.Scheme) *model.ActQuant {
		return &model.ActQuant{Mode: "static", Spec: quant.Spec{Bits: 8, Scheme: s, Granularity: quant.PerTensor}}
	}
	dynamic := &model.ActQuant{Mode: "dynamic", Spec: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}}
	for _, tc := range []struct {
		arch  arch.Spec
		spec  quant.Spec
		input *model.ActQuant
	}{
		{mlp, quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}, nil},
		{mlp, quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}, dynamic},
		{mlp, quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerChannel}, static(quant.Asymmetric)},
		{mlp, quant.Spec{Bits: 6, Scheme: quant.Symmetric, Granularity: quant.PerChannel}, static(quant.Symmetric)},
		{mlp, quant.Spec{Bits: 5, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}, nil},
		{mlp, quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerChannel}, nil},
		{mlp, quant.Spec{Bits: 4, Scheme: quant.Asymmetric, Granularity: quant.PerChannel}, static(quant.Asymmetric)},
		{mlp, quant.Spec{Bits: 3, Scheme: quant.Symmetric, Granularity: quant.PerTensor}, dynamic},
		{mlp, quant.Spec{Bits: 2, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}, nil},
		{lenet, quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}, static(quant.Asymmetric)},
		{lenet, quant.Spec{Bits: 4, Scheme: quant.Asymmetric, Granularity: quant.PerChannel}, nil},
	} {
		name := fmt.Sprintf("%s/%v", tc.arch.Arch, tc.spec)
		if tc.input != nil {
			name += "/" + tc.input.Mode + " " + string(tc.input.Spec.Scheme)
		}
		t.Run(name, func(t *testing.T) {
			m, want := quantized(t, tc.arch, tc.spec, tc.input)
			f, b, back := roundTrip(t, m)
			for _, l := range m.WeightLayers() {
				p := l.Name
				w := l.Weights[0]
				if got := storedInts(t, f, p, w.Shape, tc.spec.Bits); !slices.Equal(got, want[w.Name]) {
					t.Errorf("%s: stored integers differ from the observer's", p)
				}
				scale, ok := f.Get(p + ".weight_scale")
				wantShape := []int{1}
				if tc.spec.Granularity == quant.PerChannel {
					wantShape = []int{w.Shape[0], 1}
				}
				if !ok || scale.DType != checkpoint.DTypeF32 || !slices.Equal(scale.Shape, wantShape) {
					t.Errorf("%s.weight_scale: want F32 %v", p, wantShape)
				}
				zp, hasZP := f.Get(p + ".weight_zero_point")
				switch {
				case tc.spec.Scheme == quant.Symmetric && hasZP:
					t.Errorf("%s: symmetric layer has a weight_zero_point", p)
				case tc.spec.Scheme == quant.Asymmetric && (!hasZP || zp.DType != checkpoint.DTypeI8 || !slices.Equal(zp.Shape, wantShape)):
					t.Errorf("%s.weight_zero_point: want I8 %v", p, wantShape)
				}
				_, hasIS := f.Get(p + ".input_scale")
				_, hasIZ := f.Get(p + ".input_zero_point")
				isStatic := tc.input != nil && tc.input.Mode == "static"
				if hasIS != isStatic || hasIZ != (isStatic && tc.input.Spec.Scheme == quant.Asymmetric) {
					t.Errorf("%s: input_scale %v, input_zero_point %v for input %+v", p, hasIS, hasIZ, tc.input)
				}
			}
			for i, l := range back.WeightLayers() {
				orig := m.WeightLayers()[i]
				if !reflect.DeepEqual(l.Quant, orig.Quant) {
					t.Errorf("%s: quant %v read back as %v", l.Name, orig.Quant, l.Quant)
				}
				if !reflect.DeepEqual(l.Input, orig.Input) {
					t.Errorf("%s: input %+v read back as %+v", l.Name, orig.Input, l.Input)
				}
				for j, w := range l.Weights {
					ow := orig.Weights[j]
					if !slices.Equal(w.Data, ow.Data) {
						t.Errorf("%s: values changed through the checkpoint", w.Name)
					}
					if !reflect.DeepEqual(w.QParams, ow.QParams) {
						t.Errorf("%s: parameters %+v read back as %+v", w.Name, ow.QParams, w.QParams)
					}
				}
			}
			_, again, _ := roundTrip(t, back)
			if !bytes.Equal(b, again) {
				t.Error("saving the loaded model gives different bytes")
			}
			if want, got := logits(t, m), logits(t, back); !slices.Equal(want, got) {
				t.Errorf("logits changed through the checkpoint: %v vs %v", want[:5], got[:5])
			}
		})
	}
}

func logits(t *testing.T, m *model.Model) []float32 {
	t.Helper()
	n, err := model.Build(m, model.NetOptions{Batch: 3, Mode: model.ModeEval})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for i := range n.X {
		n.X[i] = float32(r.NormFloat64())
	}
	if err := n.Run(); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(n.Logits())
}

// A file another tool wrote, without shrink's compression metadata, still reads:
// I8 as 8 bits, a packed weight's width from its row length.
func TestQuantizedCheckpointWithoutMetadata(t *testing.T) {
	a := arch.Spec{Arch: "mlp", Inputs: 13, Hidden: []int{9}, Classes: 5}
	for _, spec := range []quant.Spec{
		{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerChannel},
		{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerTensor},
	} {
		t.Run(spec.String(), func(t *testing.T) {
			m, _ := quantized(t, a, spec, nil)
			f, err := m.ToFile(nil)
			if err != nil {
				t.Fatal(err)
			}
			f.Metadata = map[string]string{}
			back, err := model.FromFile(f, &a)
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range back.WeightLayers() {
				if *l.Quant != spec {
					t.Errorf("%s: read as %v, want %v", l.Name, l.Quant, spec)
				}
				if !slices.Equal(l.Weights[0].Data, m.WeightLayers()[i].Weights[0].Data) {
					t.Errorf("%s: values differ", l.Name)
				}
			}
		})
	}
}

// A checkpoint whose tensors contradict its metadata is refused with a message
// naming the tensor.
func TestQuantizedCheckpointMismatch(t *testing.T) {
	a := arch.Spec{Arch: "mlp", Inputs: 13, Hidden: []int{9}, Classes: 5}
	for _, tc := range []struct {
		name   string
		spec   quant.Spec
		input  *model.ActQuant
		edit   func(f *checkpoint.File)
		expect string
	}{
		{"asymmetric without zero point", quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerChannel}, nil,
			func(f *checkpoint.File) { drop(f, "fc1.weight_zero_point") }, "missing: fc1.weight_zero_point"},
		{"packed weight, 8-bit metadata", quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerChannel}, nil,
			func(f *checkpoint.File) { setQuantBits(f, 8) }, "fc1.weight_packed"},
		{"per-channel metadata, one scale", quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}, nil,
			func(f *checkpoint.File) { f.Set(checkpoint.F32("fc2.weight_scale", []int{1}, []float32{0.1})) }, "fc2.weight_scale"},
		{"static input without scale", quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel},
			&model.ActQuant{Mode: "static", Spec: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}},
			func(f *checkpoint.File) { drop(f, "fc2.input_scale") }, "missing: fc2.input_scale"},
		// The fuzzer's find: the unnamed ReLUs took an entry keyed "" and
		// evaluated a static input with no scale (a division by zero).
		{"entry for the unnamed layers", quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}, nil,
			func(f *checkpoint.File) {
				setCompression(f, `{"":{"input_quant":{"mode":"static","spec":{"bits":8,"scheme":"symmetric","granularity":"per_tensor"}}}}`)
			}, `layer ""`},
		{"entry for a layer the model lacks", quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}, nil,
			func(f *checkpoint.File) { setCompression(f, `{"fc9":{"pruned":true}}`) }, "fc9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := quantized(t, a, tc.spec, tc.input)
			f, err := m.ToFile(nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(f)
			_, err = model.FromFile(f, nil)
			if err == nil || !strings.Contains(err.Error(), tc.expect) {
				t.Fatalf("error %v, want one containing %q", err, tc.expect)
			}
		})
	}
}

func drop(f *checkpoint.File, name string) {
	f.Tensors = slices.DeleteFunc(f.Tensors, func(t checkpoint.Tensor) bool { return t.Name == name })
}

// A named layer without weights (a batch norm) carries no compression but
// freezing: metadata that says otherwise is refused with the layer's name.
func TestCompressionOfWeightlessLayerRefused(t *testing.T) {
	m := model.MustNew(arch.Spec{Input: arch.Shape{2, 5, 5}, Classes: 3, Layers: []arch.LayerSpec{
		arch.NewLayer("c1", "conv2d", map[string]any{"out": 4, "kernel": 3}),
		arch.NewLayer("n1", "batchnorm2d", nil),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc", "linear", map[string]any{"out": 3}),
	}}, rand.New(rand.NewPCG(3, 4)))
	for _, entry := range []string{`{"rank":2}`, `{"pruned":true}`, `{"quant":{"bits":8,"scheme":"symmetric","granularity":"per_tensor"}}`,
		`{"input_quant":{"mode":"dynamic","spec":{"bits":8,"scheme":"asymmetric","granularity":"per_tensor"}}}`} {
		f, err := m.ToFile(nil)
		if err != nil {
			t.Fatal(err)
		}
		setCompression(f, `{"n1":`+entry+`}`)
		if _, err := model.FromFile(f, nil); err == nil || !strings.Contains(err.Error(), "layer n1") {
			t.Errorf("%s: error %v, want one naming layer n1", entry, err)
		}
	}
	f, err := m.ToFile(nil)
	if err != nil {
		t.Fatal(err)
	}
	setCompression(f, `{"n1":{"frozen":"all"}}`)
	if _, err := model.FromFile(f, nil); err != nil {
		t.Errorf("a frozen batch norm: %v", err)
	}
}

func setCompression(f *checkpoint.File, js string) { f.Metadata["compression"] = js }

func setQuantBits(f *checkpoint.File, bits int) {
	f.Metadata["compression"] = strings.ReplaceAll(f.Metadata["compression"], `"bits":4`, fmt.Sprintf(`"bits":%d`, bits))
}

// A static layer that was never calibrated cannot be saved: there is no scale.
func TestUncalibratedStaticRefused(t *testing.T) {
	m := model.MustNew(arch.Spec{Arch: "mlp", Inputs: 4, Hidden: []int{3}, Classes: 2}, rand.New(rand.NewPCG(1, 1)))
	m.WeightLayers()[0].Input = &model.ActQuant{Mode: "static", Spec: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}}
	if _, err := m.ToFile(nil); err == nil || !strings.Contains(err.Error(), "fc1") {
		t.Fatalf("error %v, want one naming fc1", err)
	}
}
