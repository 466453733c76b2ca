package quantize_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
	"github.com/shrink-ml/shrink/stages"
	"github.com/shrink-ml/shrink/stages/quantize"

	_ "github.com/shrink-ml/shrink/stages/train"
)

// The stage, driven by the keys each PyTorch vector was made with, writes a
// checkpoint holding PyTorch's integers (exact), zero points (exact) and scales
// (1e-6 relative); at 4 bits the integers are packed and unpack to the same.
func TestQuantizeReproducesPyTorch(t *testing.T) {
	for _, tc := range []struct {
		file string
		keys string // the stage's keys; "" takes the file's recipe metadata
	}{
		{"quant_sym_per_tensor.safetensors", ""},
		{"quant_sym_per_channel.safetensors", ""},
		{"quant_asym_per_tensor.safetensors", ""},
		{"quant_asym_per_channel.safetensors", ""},
		{"quant4_sym_per_tensor.safetensors", ""},
		{"quant4_sym_per_channel.safetensors", ""},
		{"quant4_asym_per_tensor.safetensors", ""},
		{"quant4_asym_per_channel.safetensors", ""},
		{"quant_dynamic.safetensors", `{"mode": "dynamic", "granularity": "per_tensor"}`},
		{"quant_dynamic_per_channel.safetensors", `{"mode": "dynamic"}`}, // the defaults
	} {
		t.Run(tc.file, func(t *testing.T) {
			want := testkit.Oracle(t, tc.file)
			keys := tc.keys
			if keys == "" {
				keys = want.Metadata["recipe"]
			}
			cfg := testkit.Decode(t, "quantize", rawJSON(t, keys)).(*quantize.Config)
			in, err := model.Load(testkit.OraclePath("mlp_s1.safetensors"), &testkit.OracleSpec)
			if err != nil {
				t.Fatal(err)
			}
			res := run(t, cfg, stageContext("quantize", testkit.OracleSpec, in, nil, data.Config{}))
			f, back := testkit.SaveAndLoad(t, res.Model)
			for _, l := range back.WeightLayers() {
				p := l.Name
				if l.Quant == nil || l.Quant.Bits != cfg.Bits {
					t.Fatalf("%s: read back as %v, want %d bits", p, l.Quant, cfg.Bits)
				}
				if got, exp := storedInts(t, f, p, cfg.Bits), testkit.Int8s(t, want, p+".weight"); !slices.Equal(got, exp) {
					t.Errorf("%s: integers\n got %v\nwant %v", p, got, exp)
				}
				gotS, wantS := testkit.Floats(t, f, p+".weight_scale"), testkit.Floats(t, want, p+".weight_scale")
				st, _ := f.Get(p + ".weight_scale")
				wt, _ := want.Get(p + ".weight_scale")
				if !slices.Equal(st.Shape, wt.Shape) {
					t.Errorf("%s.weight_scale shape %v, want %v", p, st.Shape, wt.Shape)
				}
				for i := range wantS {
					if rel := math.Abs(float64(gotS[i]-wantS[i])) / float64(wantS[i]); rel > 1e-6 {
						t.Errorf("%s: scale[%d] %g, want %g", p, i, gotS[i], wantS[i])
					}
				}
				wantZ := testkit.Int8s(t, want, p+".weight_zero_point")
				if cfg.Scheme == quant.Asymmetric {
					if got := testkit.Int8s(t, f, p+".weight_zero_point"); !slices.Equal(got, wantZ) {
						t.Errorf("%s: zero points %v, want %v", p, got, wantZ)
					}
				} else if _, ok := f.Get(p + ".weight_zero_point"); ok || slices.ContainsFunc(wantZ, func(z int32) bool { return z != 0 }) {
					t.Errorf("%s: symmetric: no zero point stored, and PyTorch's are all 0", p)
				}
				if got, exp := testkit.Floats(t, f, p+".bias"), testkit.Floats(t, want, p+".bias"); !slices.Equal(got, exp) {
					t.Errorf("%s: bias changed", p)
				}
			}
		})
	}
}

// storedInts reads a layer's integers from the checkpoint as the spec lays them
// out: I8 NAME.weight from 5 bits up, packed I32 NAME.weight_packed below.
func storedInts(t *testing.T, f *checkpoint.File, p string, bits int) []int32 {
	t.Helper()
	if bits > 4 {
		return testkit.Int8s(t, f, p+".weight")
	}
	if _, ok := f.Get(p + ".weight"); ok {
		t.Errorf("%s: a %d-bit layer has an unpacked %s.weight", p, bits, p)
	}
	pk, ok := f.Get(p + ".weight_packed")
	if !ok || pk.DType != checkpoint.DTypeI32 {
		t.Fatalf("%s: no I32 %s.weight_packed", p, p)
	}
	shape, _ := f.Get(p + ".weight_shape")
	dims, err := shape.Int32s()
	if err != nil || len(dims) != 2 {
		t.Fatalf("%s.weight_shape: want I32 [2]", p)
	}
	words, _ := pk.Int32s()
	q, err := quant.Unpack(words, int(dims[0]), int(dims[1]), bits)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// Keys are decoded strictly; rules across keys name the key at fault.
func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  map[string]any
		want string // "" = valid
	}{
		{"defaults", map[string]any{}, ""},
		{"everything", map[string]any{"mode": "static", "bits": 6, "scheme": "asymmetric", "granularity": "per_tensor",
			"calibration_batches": 3, "observer": "percentile", "percentile": 99.9, "activations": map[string]any{"bits": 7, "scheme": "symmetric"},
			"layers": []any{"fc1", "fc3"}, "overrides": map[string]any{"fc1": map[string]any{"bits": 4}}}, ""},
		{"bits too low", map[string]any{"bits": 1}, "bits: 1 is below the minimum 2"},
		{"bits too high", map[string]any{"bits": 16}, "bits: 16 is above the maximum 8"},
		{"unknown mode", map[string]any{"mode": "qat"}, "mode:"},
		{"unknown key", map[string]any{"granularty": "per_tensor"}, "granularty: unknown key"},
		{"percentile needs static", map[string]any{"observer": "percentile"}, "observer: percentile calibrates static"},
		{"percentile range", map[string]any{"mode": "static", "observer": "percentile", "percentile": 40}, "percentile:"},
		{"calibration batches", map[string]any{"calibration_batches": 0}, "calibration_batches:"},
		{"override outside layers", map[string]any{"layers": []any{"fc2"}, "overrides": map[string]any{"fc1": map[string]any{"bits": 4}}}, "overrides.fc1: fc1 is not in layers"},
		{"override sets nothing", map[string]any{"overrides": map[string]any{"fc1": map[string]any{}}}, "overrides.fc1: sets nothing"},
		{"override bad bits", map[string]any{"overrides": map[string]any{"fc1": map[string]any{"bits": 9}}}, "overrides.fc1.bits: 9 is above the maximum 8"},
		{"override bad scheme", map[string]any{"overrides": map[string]any{"fc1": map[string]any{"scheme": "affine"}}}, "overrides.fc1.scheme:"},
		{"layer twice", map[string]any{"layers": []any{"fc1", "fc1"}}, "layers.1:"},
		{"activation bits", map[string]any{"activations": map[string]any{"bits": 12}}, "activations.bits:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &quantize.Config{Settings: quantize.DefaultSettings("dynamic")}
			errs := config.Decode(tc.raw, cfg)
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Fatalf("unexpected error: %v", errs)
			case tc.want != "" && (len(errs) == 0 || !strings.Contains(errs.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", errs, tc.want)
			}
		})
	}
}

// Static mode calibrates each layer's input on calibration_batches training
// batches and stores its scale and zero point; evaluation through the checkpoint
// gives what the model in memory gives.
func TestStaticQuantization(t *testing.T) {
	ds, dcfg := syntheticData(t)
	for _, tc := range []struct {
		name string
		keys map[string]any
	}{
		{"minmax", map[string]any{"mode": "static", "calibration_batches": 2}},
		{"percentile", map[string]any{"mode": "static", "observer": "percentile", "percentile": 99}},
		{"symmetric inputs", map[string]any{"mode": "static", "activations": map[string]any{"scheme": "symmetric"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			float := trained(t, ds, dcfg)
			cfg := testkit.Decode(t, "quantize", tc.keys).(*quantize.Config)
			res := run(t, cfg, stageContext("quantize", syntheticArch, float.Clone(), ds, dcfg))
			f, back := testkit.SaveAndLoad(t, res.Model)
			for _, l := range back.WeightLayers() {
				if l.Input == nil || l.Input.Mode != "static" || len(l.Input.Params.Scale) != 1 {
					t.Fatalf("%s: input %+v, want static with a scale", l.Name, l.Input)
				}
				want := cfg.InputSpec().Observe([]float32{l.Input.RangeMin}, []float32{l.Input.RangeMax})
				if got := testkit.Floats(t, f, l.Name+".input_scale"); !slices.Equal(got, want.Scale) {
					t.Errorf("%s.input_scale %v, the stored range gives %v", l.Name, got, want.Scale)
				}
				_, hasZP := f.Get(l.Name + ".input_zero_point")
				if hasZP != (cfg.Activations.Scheme == quant.Asymmetric) {
					t.Errorf("%s: input_zero_point present %v with %s inputs", l.Name, hasZP, cfg.Activations.Scheme)
				}
			}
			// The ranges follow the calibration: more batches never shrink them.
			if tc.name == "minmax" && back.WeightLayers()[0].Input.RangeMax <= 0 {
				t.Errorf("fc1 input range %g..%g", back.WeightLayers()[0].Input.RangeMin, back.WeightLayers()[0].Input.RangeMax)
			}
			mem, err := model.Evaluate(context.Background(), res.Model, ds.Test, 30)
			if err != nil {
				t.Fatal(err)
			}
			disk, err := model.Evaluate(context.Background(), back, ds.Test, 30)
			if err != nil {
				t.Fatal(err)
			}
			if mem != disk {
				t.Errorf("in memory %+v, through the checkpoint %+v", mem, disk)
			}
			fl, _ := model.Evaluate(context.Background(), float, ds.Test, 30)
			if math.Abs(disk.Accuracy-fl.Accuracy) > 0.05 {
				t.Errorf("int8 accuracy %.3f, float %.3f", disk.Accuracy, fl.Accuracy)
			}
			if disk.Loss == fl.Loss {
				t.Errorf("quantized loss equals the float loss %g exactly: quantization is not evaluated", fl.Loss)
			}
		})
	}
}

// trained is the synthetic model after a few epochs of the train stage.
func trained(t *testing.T, ds *data.Dataset, dcfg data.Config) *model.Model {
	t.Helper()
	cfg := testkit.Decode(t, "train", map[string]any{"epochs": 3})
	return run(t, cfg, stageContext("train", syntheticArch, nil, ds, dcfg)).Model
}

// Minmax calibration takes exactly calibration_batches * data.batch_size rows:
// with one batch, the fc1 range is that of the first shuffled batch.
func TestCalibrationRows(t *testing.T) {
	ds, dcfg := syntheticData(t)
	m := trained(t, ds, dcfg)
	ranges := map[int][2]float32{}
	for _, batches := range []int{1, 2, 100} {
		cfg := testkit.Decode(t, "quantize", map[string]any{"mode": "static", "calibration_batches": batches}).(*quantize.Config)
		res := run(t, cfg, stageContext("quantize", syntheticArch, m.Clone(), ds, dcfg))
		in := res.Model.WeightLayers()[0].Input
		ranges[batches] = [2]float32{in.RangeMin, in.RangeMax}
	}
	lo, hi := slices.Min(ds.Train.X), slices.Max(ds.Train.X)
	if ranges[100] != [2]float32{min(lo, 0), hi} && ranges[100] != [2]float32{lo, hi} {
		t.Errorf("100 batches (more than the split) cover all rows: range %v, the split's %v..%v", ranges[100], lo, hi)
	}
	one, two := ranges[1], ranges[2]
	if one[0] < two[0] || one[1] > two[1] || one == ranges[100] {
		t.Errorf("ranges should grow with batches: 1 %v, 2 %v, all %v", one, two, ranges[100])
	}
}

// Per-layer overrides mix precisions in one model: the checkpoint stores each
// layer as its width says, and layers left out of layers stay float.
func TestMixedPrecision(t *testing.T) {
	ds, dcfg := syntheticData(t)
	m := trained(t, ds, dcfg)
	cfg := testkit.Decode(t, "quantize", map[string]any{
		"layers":    []any{"fc1", "fc2"},
		"overrides": map[string]any{"fc1": map[string]any{"bits": 4, "scheme": "asymmetric"}, "fc2": map[string]any{"granularity": "per_tensor"}},
	}).(*quantize.Config)
	res := run(t, cfg, stageContext("quantize", syntheticArch, m, ds, dcfg))
	f, back := testkit.SaveAndLoad(t, res.Model)
	want := map[string]*quant.Spec{
		"fc1": {Bits: 4, Scheme: quant.Asymmetric, Granularity: quant.PerChannel},
		"fc2": {Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerTensor},
		"fc3": nil,
	}
	for _, l := range back.WeightLayers() {
		if (l.Quant == nil) != (want[l.Name] == nil) || (l.Quant != nil && *l.Quant != *want[l.Name]) {
			t.Errorf("%s: %v, want %v", l.Name, l.Quant, want[l.Name])
		}
	}
	for name, dtype := range map[string]checkpoint.DType{
		"fc1.weight_packed": checkpoint.DTypeI32, "fc1.weight_zero_point": checkpoint.DTypeI8,
		"fc2.weight": checkpoint.DTypeI8, "fc3.weight": checkpoint.DTypeF32,
	} {
		if tn, ok := f.Get(name); !ok || tn.DType != dtype {
			t.Errorf("%s: want %s", name, dtype)
		}
	}
	if back.WeightLayers()[2].Input != nil {
		t.Errorf("fc3 is not quantized, its input must stay float")
	}
}

// Names the model does not have are errors naming the key and the model's layers.
func TestUnknownLayers(t *testing.T) {
	for _, keys := range []map[string]any{
		{"layers": []any{"fc9"}},
		{"overrides": map[string]any{"fc9": map[string]any{"bits": 4}}},
	} {
		cfg := testkit.Decode(t, "quantize", keys)
		in, _ := model.Load(testkit.OraclePath("mlp_s1.safetensors"), &testkit.OracleSpec)
		_, err := cfg.Run(stageContext("quantize", testkit.OracleSpec, in, nil, data.Config{}))
		if err == nil || !strings.Contains(err.Error(), `"fc9"`) || !strings.Contains(err.Error(), "fc1, fc2, fc3") {
			t.Errorf("%v: error %v, want one naming fc9 and the model's layers", keys, err)
		}
	}
}

// Quantization is sticky: training a quantized model keeps it quantized, its
// weights on the grid of freshly observed parameters; pruned zeros stay zero
// through quantization.
func TestStickyThroughTraining(t *testing.T) {
	ds, dcfg := syntheticData(t)
	m := trained(t, ds, dcfg)
	// Prune a third of fc1 by hand.
	fc1 := m.WeightLayers()[0]
	fc1.Pruned = true
	w := fc1.Weights[0]
	w.Mask = make([]float32, len(w.Data))
	for i := range w.Mask {
		if i%3 != 0 {
			w.Mask[i] = 1
		}
	}
	m.ApplyMasks()
	q := run(t, testkit.Decode(t, "quantize", map[string]any{"bits": 4}), stageContext("quantize", syntheticArch, m, ds, dcfg)).Model
	_, loaded := testkit.SaveAndLoad(t, q)
	after := run(t, testkit.Decode(t, "train", map[string]any{"epochs": 1}), stageContext("train", syntheticArch, loaded, ds, dcfg)).Model
	_, back := testkit.SaveAndLoad(t, after)
	for _, l := range back.WeightLayers() {
		if l.Quant == nil || l.Quant.Bits != 4 || l.Input == nil || l.Input.Mode != "dynamic" {
			t.Fatalf("%s: lost its quantization through training: %v %+v", l.Name, l.Quant, l.Input)
		}
		assertOnGrid(t, l)
	}
	for i, v := range back.WeightLayers()[0].Weights[0].Data {
		if i%3 == 0 && v != 0 {
			t.Fatalf("pruned fc1 weight %d is %g after quantize and train", i, v)
		}
	}
	if slices.Equal(back.WeightLayers()[1].Weights[0].Data, loaded.WeightLayers()[1].Weights[0].Data) {
		t.Error("training changed nothing")
	}
}

// assertOnGrid checks every weight value is (q - zero_point) * scale for an
// integer q within the layer's range.
func assertOnGrid(t *testing.T, l *model.Layer) {
	t.Helper()
	qmin, qmax := l.Quant.Range()
	for _, w := range l.Weights {
		p := w.QParams
		if p == nil {
			t.Fatalf("%s: no quantization parameters", w.Name)
		}
		n := len(w.Data) / len(p.Scale)
		for i, v := range w.Data {
			c := i / n
			q := math.Round(float64(v/p.Scale[c])) + float64(p.ZeroPoint[c])
			if q < float64(qmin) || q > float64(qmax) || float32(int32(q)-p.ZeroPoint[c])*p.Scale[c] != v {
				t.Fatalf("%s[%d] = %g is not on the grid (scale %g, zero point %d)", w.Name, i, v, p.Scale[c], p.ZeroPoint[c])
			}
		}
	}
}

var _ stages.Config = (*quantize.Config)(nil)

// A later static stage calibrates only its own layers: the ranges an earlier
// stage calibrated stay as they were.
func TestLaterStageKeepsEarlierCalibration(t *testing.T) {
	ds, dcfg := syntheticData(t)
	m := trained(t, ds, dcfg)
	first := run(t, testkit.Decode(t, "quantize", map[string]any{"mode": "static", "layers": []any{"fc1"}, "calibration_batches": 1}),
		stageContext("first", syntheticArch, m, ds, dcfg)).Model
	_, loaded := testkit.SaveAndLoad(t, first)
	second := run(t, testkit.Decode(t, "quantize", map[string]any{"mode": "static", "layers": []any{"fc2", "fc3"}}),
		stageContext("second", syntheticArch, loaded, ds, dcfg)).Model
	if got, want := *second.WeightLayers()[0].Input, *first.WeightLayers()[0].Input; got.RangeMin != want.RangeMin || got.RangeMax != want.RangeMax {
		t.Errorf("fc1 range %g..%g, the first stage calibrated %g..%g", got.RangeMin, got.RangeMax, want.RangeMin, want.RangeMax)
	}
	for _, l := range second.WeightLayers() {
		if l.Quant == nil || l.Input == nil || len(l.Input.Params.Scale) != 1 {
			t.Errorf("%s: %v %+v", l.Name, l.Quant, l.Input)
		}
	}
}
