package model_test

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
	"github.com/shrink-ml/shrink/quant/nf4"
)

// loraModel is a model whose weight layers (the ones adapt accepts) carry
// adapters with trained-looking (non-zero) B, the others frozen, its last
// layer trainable, and its frozen bases float, NF4 or integer.
func loraModel(t *testing.T, spec arch.Spec, base string, seed uint64) *model.Model {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	m := model.MustNew(spec, rng)
	head := m.WeightLayers()[len(m.WeightLayers())-1]
	for _, l := range m.Layers {
		if l == head || len(l.Tensors()) == 0 {
			continue
		}
		l.Frozen = model.FrozenParams
		if !l.Compressible() {
			continue
		}
		if err := l.AddAdapter(3, 6, seed%2 == 0, 0, rng); err != nil {
			t.Fatal(err)
		}
		for i := range l.Adapter.B.Data {
			l.Adapter.B.Data[i] = float32(rng.NormFloat64() * 0.1)
		}
		var err error
		switch base {
		case "nf4":
			err = l.QuantizeNF4(64, true)
		case "nf4-single":
			err = l.QuantizeNF4(128, false)
		case "int8":
			err = l.QuantizeFrozen(quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel})
		case "int4":
			err = l.QuantizeFrozen(quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerChannel})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func sampleSplit(spec arch.Spec, n int, seed uint64) *data.Split {
	rng := rand.New(rand.NewPCG(seed, 9))
	shape := spec.InputShape()
	s := &data.Split{N: n, Shape: shape, Features: arch.Shape(shape).Size()}
	for i := 0; i < n*s.Features; i++ {
		s.X = append(s.X, float32(rng.NormFloat64()))
	}
	for i := 0; i < n; i++ {
		s.Y = append(s.Y, int32(rng.IntN(spec.Classes)))
	}
	return s
}

func mlpSpec() arch.Spec { return arch.Spec{Arch: "mlp", Inputs: 70, Hidden: []int{33, 9}, Classes: 4} }

// convSpec is a small conv net with batch norm (the lora fixtures').
func convSpec(t *testing.T) arch.Spec {
	return readLoraFixture(t, "../testdata/lora/conv_bn_update.safetensors").spec
}

// TestAdapterCheckpointRoundTrip: a model with adapters and a frozen float,
// NF4 or integer base saves and reloads to the same model (same logits, same
// adapters, freezing and codes), and saving the reloaded model gives the same
// bytes. NF4 weights are stored under bitsandbytes' names.
func TestAdapterCheckpointRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, base string
		spec       func(*testing.T) arch.Spec
	}{
		{"mlp float", "float", func(*testing.T) arch.Spec { return mlpSpec() }},
		{"mlp nf4", "nf4", func(*testing.T) arch.Spec { return mlpSpec() }},
		{"mlp nf4 no double quant", "nf4-single", func(*testing.T) arch.Spec { return mlpSpec() }},
		{"mlp int8", "int8", func(*testing.T) arch.Spec { return mlpSpec() }},
		{"mlp int4", "int4", func(*testing.T) arch.Spec { return mlpSpec() }},
		{"conv nf4", "nf4", convSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec(t)
			m := loraModel(t, spec, tc.base, 7)
			f, err := m.ToFile(nil)
			if err != nil {
				t.Fatal(err)
			}
			first, err := checkpoint.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			back, err := checkpoint.Read(bytes.NewReader(first), int64(len(first)))
			if err != nil {
				t.Fatal(err)
			}
			m2, err := model.FromFile(back, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range m.Layers {
				l2 := m2.Layers[i]
				if l.Frozen != l2.Frozen || (l.Adapter == nil) != (l2.Adapter == nil) {
					t.Fatalf("%s: frozen %q adapter %v, reloaded %q %v", l.Label(), l.Frozen, l.Adapter != nil, l2.Frozen, l2.Adapter != nil)
				}
				if a := l.Adapter; a != nil {
					b := l2.Adapter
					if *a.Spec() != *b.Spec() || !slices.Equal(a.A.Data, b.A.Data) || !slices.Equal(a.B.Data, b.B.Data) {
						t.Errorf("%s: adapter changed by the round trip", l.Name)
					}
				}
				for j, w := range l.Weights {
					w2 := l2.Weights[j]
					if !slices.Equal(w.Data, w2.Data) || (w.NF4 == nil) != (w2.NF4 == nil) {
						t.Errorf("%s: changed by the round trip", w.Name)
					}
				}
			}
			split := sampleSplit(spec, 5, 3)
			want, err := model.Logits(context.Background(), m, split, 2)
			if err != nil {
				t.Fatal(err)
			}
			got, err := model.Logits(context.Background(), m2, split, 2)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Error("the reloaded model computes other logits")
			}
			f2, err := m2.ToFile(nil)
			if err != nil {
				t.Fatal(err)
			}
			second, err := checkpoint.Marshal(f2)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first, second) {
				t.Error("saving the reloaded model gives other bytes")
			}
			if strings.HasPrefix(tc.base, "nf4") {
				name := m.WeightLayers()[0].Weights[0].Name
				want := []string{name, name + ".absmax", name + ".quant_map", name + ".quant_state.bitsandbytes__nf4"}
				if tc.base == "nf4" {
					want = append(want, name+".nested_absmax", name+".nested_quant_map")
				}
				for _, n := range want {
					if _, ok := back.Get(n); !ok {
						t.Errorf("no %s in the checkpoint", n)
					}
				}
				if tn, _ := back.Get(name); tn.DType != checkpoint.DTypeU8 {
					t.Errorf("%s is %s, want U8 packed codes", name, tn.DType)
				}
			}
		})
	}
}

// TestAdapterLoadIsStrict: a checkpoint whose adapter tensors are missing,
// misshapen or unannounced is refused, naming the tensor.
func TestAdapterLoadIsStrict(t *testing.T) {
	m := loraModel(t, mlpSpec(), "nf4", 3)
	for _, tc := range []struct {
		name, want string
		edit       func(f *checkpoint.File)
	}{
		{"missing B", "missing: fc1.lora_B.weight", func(f *checkpoint.File) { drop(f, "fc1.lora_B.weight") }},
		{"misshapen A", "fc2.lora_A.weight is F32 [2 33], want F32 [3 33]", func(f *checkpoint.File) {
			f.Set(checkpoint.F32("fc2.lora_A.weight", []int{2, 33}, make([]float32, 66)))
		}},
		{"adapter without metadata", "unexpected: fc1.lora_A.weight, fc1.lora_B.weight", func(f *checkpoint.File) {
			f.Metadata["compression"] = strings.Replace(f.Metadata["compression"], `"adapter":`, `"old":`, 1)
		}},
		{"missing NF4 absmax", "fc1.weight.absmax", func(f *checkpoint.File) {
			drop(f, "fc1.weight.absmax")
		}},
		// Metadata a changed byte could make: refused before anything uses it.
		{"rank 0", "adapter: r 0", func(f *checkpoint.File) {
			f.Metadata["compression"] = strings.Replace(f.Metadata["compression"], `"r":3`, `"r":0`, 1)
		}},
		{"dropout 1", "adapter: dropout 1", func(f *checkpoint.File) {
			f.Metadata["compression"] = strings.Replace(f.Metadata["compression"], `"alpha":`, `"dropout":1,"alpha":`, 1)
		}},
		{"negative alpha", "adapter: alpha -", func(f *checkpoint.File) {
			f.Metadata["compression"] = strings.Replace(f.Metadata["compression"], `"alpha":`, `"alpha":-`, 1)
		}},
		{"unknown freeze", `frozen "most"`, func(f *checkpoint.File) {
			f.Metadata["compression"] = strings.Replace(f.Metadata["compression"], `"frozen":"params"`, `"frozen":"most"`, 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := m.ToFile(nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(f)
			_, err = model.FromFile(f, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// TestMergeIsWPlusBAScaled: merging gives W + B A * scaling to float32
// rounding (W the dequantized base for NF4 and integer bases), as a plain
// float model: no adapter, no NF4, no integer base on the merged layers, no
// layer frozen, every tensor F32.
func TestMergeIsWPlusBAScaled(t *testing.T) {
	for _, base := range []string{"float", "nf4", "int8"} {
		t.Run(base, func(t *testing.T) {
			m := loraModel(t, convSpec(t), base, 11)
			before := m.Clone()
			m.MergeAdapters()
			for i, l := range before.Layers {
				a := l.Adapter
				if a == nil {
					continue
				}
				w0, w := l.Weights[0].Data, m.Layers[i].Weights[0].Data
				r, out, cols := a.Rank(), a.B.Shape[0], len(w0)/a.B.Shape[0]
				s := a.Scaling()
				for o := 0; o < out; o++ {
					for c := 0; c < cols; c++ {
						var ba float64
						for k := 0; k < r; k++ {
							ba += float64(a.B.Data[o*r+k]) * float64(a.A.Data[k*cols+c])
						}
						exact := float64(w0[o*cols+c]) + ba*s
						// three float32 roundings: the product, the scaling, the sum
						tol := 3 * (ulp(float32(exact)) + ulp(float32(ba*s)))
						if d := math.Abs(float64(w[o*cols+c]) - exact); d > tol {
							t.Fatalf("%s[%d,%d] = %g, W + BA*s = %g (off by %g, tolerance %g)", l.Name, o, c, w[o*cols+c], exact, d, tol)
						}
					}
				}
			}
			for _, l := range m.Layers {
				if l.Adapter != nil || l.Frozen != model.Trainable || (l.Compressible() && (l.Weights[0].NF4 != nil || l.Quant != nil)) {
					t.Fatalf("%s is not plain after merging", l.Label())
				}
			}
			f, err := m.ToFile(nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, tn := range f.Tensors {
				if tn.DType != checkpoint.DTypeF32 && tn.DType != checkpoint.DTypeI64 {
					t.Errorf("%s is %s after merging", tn.Name, tn.DType)
				}
			}
		})
	}
}

func ulp(x float32) float64 {
	return float64(math.Nextafter32(x, float32(math.Inf(1))) - x)
}

// TestFrozenBaseDoesNotTrain: training a LoRA model moves the adapters and
// the trainable head only; the frozen weights keep their bits and the NF4
// codes theirs. The optimizer holds moments for the trainable values alone.
func TestFrozenBaseDoesNotTrain(t *testing.T) {
	for _, base := range []string{"float", "nf4", "int4"} {
		t.Run(base, func(t *testing.T) {
			spec := mlpSpec()
			m := loraModel(t, spec, base, 5)
			for _, l := range m.WeightLayers() {
				if l.Adapter != nil {
					l.Adapter.Dropout = 0.2
				}
			}
			before := m.Clone()
			codes := map[string][]byte{}
			for _, l := range m.WeightLayers() {
				if q := l.Weights[0].NF4; q != nil {
					codes[l.Name] = slices.Clone(q.Packed)
				}
			}
			net, err := model.Build(m, model.NetOptions{Batch: 16, Mode: model.ModeTrain, Rand: rand.New(rand.NewPCG(1, 1))})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, p := range net.Params() {
				n += len(p.Data)
			}
			if n != m.Trainable() {
				t.Fatalf("the net trains %d values, Trainable says %d", n, m.Trainable())
			}
			opt, err := model.NewOptimizer(model.DefaultOptimizer(), net.Params())
			if err != nil {
				t.Fatal(err)
			}
			moments := 0
			for _, mo := range opt.State.Moments {
				moments += len(mo)
			}
			if moments != 2*m.Trainable() {
				t.Fatalf("Adam holds %d values for %d trainable", moments, m.Trainable())
			}
			err = model.Train(context.Background(), m, sampleSplit(spec, 64, 2), model.TrainOptions{Epochs: 2, BatchSize: 16, Optimizer: model.DefaultOptimizer()}, rand.New(rand.NewPCG(2, 2)))
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range m.Layers {
				b := before.Layers[i]
				for j, w := range slices.Concat(l.Weights, l.Params) {
					w0 := slices.Concat(b.Weights, b.Params)[j]
					same := slices.Equal(w.Data, w0.Data)
					if l.Frozen != model.Trainable && !same {
						t.Errorf("frozen %s changed", w.Name)
					}
					if l.Frozen == model.Trainable && same {
						t.Errorf("trainable %s did not change", w.Name)
					}
				}
				if l.Adapter != nil && slices.Equal(l.Adapter.B.Data, b.Adapter.B.Data) {
					t.Errorf("%s's adapter did not train", l.Name)
				}
				if c, ok := codes[l.Name]; ok && !bytes.Equal(c, l.Weights[0].NF4.Packed) {
					t.Errorf("%s's NF4 codes changed", l.Name)
				}
			}
		})
	}
}

// TestChangedNF4WeightIsQuantizedAfresh: when a later stage changes an NF4
// weight's values (pruning zeros), saving quantizes them afresh: the saved
// codes stand for the new values' quantization, and zeros stay zero.
func TestChangedNF4WeightIsQuantizedAfresh(t *testing.T) {
	m := loraModel(t, mlpSpec(), "nf4", 9)
	w := m.Layer("fc1").Weights[0]
	for i := 0; i < len(w.Data); i += 3 {
		w.Data[i] = 0
	}
	f, err := m.ToFile(nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := nf4.FromTensors(f, w.Name)
	if err != nil {
		t.Fatal(err)
	}
	want, err := nf4.Quantize(w.Data, w.Shape, 64, true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q.Packed, want.Packed) {
		t.Fatal("the saved codes are not the changed weight's")
	}
	got := make([]float32, q.Len())
	if err := q.Dequantize(got); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(got); i += 3 {
		if got[i] != 0 {
			t.Fatalf("zero at %d saved as %g", i, got[i])
		}
	}
}
