package qat_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
	"github.com/shrink-ml/shrink/stages"
	"github.com/shrink-ml/shrink/stages/qat"
	"github.com/shrink-ml/shrink/stages/quantize"
)

var spec = arch.Spec{Arch: "mlp", Inputs: 16, Hidden: []int{24, 12}, Classes: 4}

func syntheticData(t *testing.T) (*data.Dataset, data.Config) {
	cfg := testkit.Synthetic(16, 4, 400, 32)
	return testkit.Load(t, cfg), cfg
}

func stageContext(t *testing.T, id string, input *model.Model, ds *data.Dataset, cfg data.Config) *stages.Context {
	src := rand.NewPCG(42, 1)
	return &stages.Context{
		Context: context.Background(), ID: id, Log: zerolog.Nop(),
		Rand: rand.New(src), Source: src, Seed: 42, Spec: spec, Input: input,
		Data: func() (*data.Dataset, error) { return ds, nil }, DataConfig: &cfg,
		StateDir: t.TempDir(),
	}
}

func run(t *testing.T, cfg stages.Config, ctx *stages.Context) *model.Model {
	t.Helper()
	res, err := cfg.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res.Model
}

func evaluate(t *testing.T, m *model.Model, s *data.Split) model.Result {
	t.Helper()
	r, err := model.Evaluate(context.Background(), m, s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// QAT on synthetic data at 3 bits lowers the loss of the quantized model, and
// ends with every layer quantized exactly as the quantize stage quantizes the
// final float weights (read from the training state the last epoch saved).
func TestQATLowersLossEndsQuantized(t *testing.T) {
	ds, dcfg := syntheticData(t)
	start := model.MustNew(spec, rand.New(rand.NewPCG(3, 3)))
	keys := map[string]any{"bits": 3, "mode": "dynamic", "epochs": 4, "optimizer": map[string]any{"lr": 0.01}}
	ptq := run(t, testkit.Decode(t, "quantize", map[string]any{"bits": 3}), stageContext(t, "quantize", start.Clone(), ds, dcfg))
	ctx := stageContext(t, "qat", start.Clone(), ds, dcfg)
	m := run(t, testkit.Decode(t, "qat", keys), ctx)
	_, back := testkit.SaveAndLoad(t, m)
	before, after := evaluate(t, ptq, ds.Train), evaluate(t, back, ds.Train)
	if !(after.Loss < before.Loss*0.7) {
		t.Errorf("training loss of the 3-bit model: %.4f before QAT, %.4f after", before.Loss, after.Loss)
	}
	t.Logf("3-bit loss %.4f -> %.4f, accuracy %.3f -> %.3f", before.Loss, after.Loss, before.Accuracy, after.Accuracy)

	state, err := checkpoint.ReadFile(filepath.Join(ctx.StateDir, "qat.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	final := start.Clone()
	for _, l := range final.WeightLayers() {
		for _, w := range l.Weights {
			tn, ok := state.Get("w:" + w.Name)
			if !ok {
				t.Fatalf("training state has no %s", w.Name)
			}
			raw, _ := tn.Float32s()
			copy(w.Data, raw)
		}
	}
	layers, err := (&quantize.Settings{Bits: 3, Scheme: quant.Symmetric, Granularity: quant.PerChannel, Mode: "dynamic"}).Mark(final)
	if err != nil {
		t.Fatal(err)
	}
	quantize.Snap(layers)
	for i, l := range back.WeightLayers() {
		want := final.WeightLayers()[i]
		if *l.Quant != (quant.Spec{Bits: 3, Scheme: quant.Symmetric, Granularity: quant.PerChannel}) {
			t.Errorf("%s: %v", l.Name, l.Quant)
		}
		w, ww := l.Weights[0], want.Weights[0]
		if !slices.Equal(w.Data, ww.Data) || !reflect.DeepEqual(w.QParams, ww.QParams) {
			t.Errorf("%s: not quantized as the quantize stage quantizes the final weights", l.Name)
		}
		assertOnGrid(t, l)
		if slices.Equal(ww.Data, start.WeightLayers()[i].Weights[0].Data) {
			t.Errorf("%s: did not train", l.Name)
		}
	}
}

// Defaults: static mode (input ranges train with the weights), int8 symmetric
// per-channel weights, one epoch of Adam at lr 1e-4.
func TestDefaults(t *testing.T) {
	cfg := testkit.Decode(t, "qat", map[string]any{}).(*qat.Config)
	if cfg.Mode != "static" || cfg.Bits != 8 || cfg.Scheme != quant.Symmetric || cfg.Granularity != quant.PerChannel ||
		cfg.Epochs != 1 || cfg.Optimizer.Name != "adam" || cfg.Optimizer.LR != 1e-4 {
		t.Errorf("defaults: %+v", cfg)
	}
	if !cfg.UsesData() {
		t.Error("qat trains: it uses data")
	}
}

// Static QAT starts its moving averages from calibrated ranges and stores the
// ranges training ended with as each input's scale and zero point.
func TestStaticQATStoresMovingAverages(t *testing.T) {
	ds, dcfg := syntheticData(t)
	start := model.MustNew(spec, rand.New(rand.NewPCG(3, 3)))
	calibrated := run(t, testkit.Decode(t, "quantize", map[string]any{"mode": "static"}), stageContext(t, "qat", start.Clone(), ds, dcfg))
	m := run(t, testkit.Decode(t, "qat", map[string]any{"epochs": 2, "optimizer": map[string]any{"lr": 0.01}}), stageContext(t, "qat", start.Clone(), ds, dcfg))
	f, back := testkit.SaveAndLoad(t, m)
	for i, l := range back.WeightLayers() {
		in := l.Input
		if in == nil || in.Mode != "static" {
			t.Fatalf("%s: input %+v", l.Name, in)
		}
		want := in.Spec.Observe([]float32{in.RangeMin}, []float32{in.RangeMax})
		if !reflect.DeepEqual(in.Params, want) {
			t.Errorf("%s: params %+v, the range gives %+v", l.Name, in.Params, want)
		}
		if _, ok := f.Get(l.Name + ".input_zero_point"); !ok {
			t.Errorf("%s: asymmetric inputs need input_zero_point", l.Name)
		}
		cal := calibrated.WeightLayers()[i].Input
		if i > 0 && in.RangeMax == cal.RangeMax {
			t.Errorf("%s: range %g..%g did not move from the calibrated one in training", l.Name, in.RangeMin, in.RangeMax)
		}
	}
	if r := evaluate(t, back, ds.Test); r.Accuracy < 0.5 {
		t.Errorf("accuracy %.3f after static int8 QAT", r.Accuracy)
	}
}

// With no epochs, qat is the quantize stage.
func TestZeroEpochsIsQuantize(t *testing.T) {
	ds, dcfg := syntheticData(t)
	start := model.MustNew(spec, rand.New(rand.NewPCG(3, 3)))
	keys := map[string]any{"mode": "static", "bits": 4, "scheme": "asymmetric"}
	q := run(t, testkit.Decode(t, "quantize", keys), stageContext(t, "same", start.Clone(), ds, dcfg))
	keys["epochs"] = 0
	z := run(t, testkit.Decode(t, "qat", keys), stageContext(t, "same", start.Clone(), ds, dcfg))
	fq, _ := testkit.SaveAndLoad(t, q)
	fz, _ := testkit.SaveAndLoad(t, z)
	if !reflect.DeepEqual(fq.Tensors, fz.Tensors) {
		t.Error("qat with epochs 0 differs from quantize")
	}
	for _, l := range z.WeightLayers() {
		assertOnGrid(t, l)
	}
}

// assertOnGrid checks every weight value is (q - zero_point) * scale for an
// integer q within the layer's range.
func assertOnGrid(t *testing.T, l *model.Layer) {
	t.Helper()
	qmin, qmax := l.Quant.Range()
	for _, w := range l.Weights {
		p := w.QParams
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

// TestQATResNetFoldsBatchNorms trains a ResNet with quantized convolutions
// whose batch norms freeze after the first of two epochs, then fold. Per-channel
// symmetric quantization commutes with a batch norm's per-channel scale, so the
// folded int8 model computes what the trained model with its frozen batch norms
// computes (keep_batchnorm: the same training without the fold) up to rounding.
func TestQATResNetFoldsBatchNorms(t *testing.T) {
	ds, cfg := syntheticData(t)
	rspec := arch.Spec{Arch: arch.ResNet, Depth: 8, Width: 4, Input: arch.Shape{1, 4, 4}, Classes: 4}
	start := model.MustNew(rspec, rand.New(rand.NewPCG(3, 4)))
	keys := map[string]any{"epochs": 2, "freeze_bn_after": 1, "optimizer": map[string]any{"name": "adam", "lr": 0.001}, "calibration_batches": 2}
	ctx := func() *stages.Context {
		c := stageContext(t, "qat", start, ds, cfg)
		c.Spec = rspec
		return c
	}
	res, err := testkit.Decode(t, "qat", keys).Run(ctx())
	if err != nil {
		t.Fatal(err)
	}
	folded := res.Model
	keys["keep_batchnorm"] = true
	kept := run(t, testkit.Decode(t, "qat", keys), ctx())
	if len(kept.Layers) != len(start.Layers) || len(folded.Layers) != len(start.Layers)-9 {
		t.Fatalf("layers: start %d, kept %d, folded %d (9 batch norms)", len(start.Layers), len(kept.Layers), len(folded.Layers))
	}
	if res.Metrics["freeze_bn_after"] != 1 {
		t.Errorf("metrics: %v", res.Metrics)
	}
	// Epoch 1 trained the statistics, epoch 2 kept them.
	bn := kept.Layer("layer1.0.bn1")
	if bn.Counters[0].Value != int64(ds.Train.N+31)/32 {
		t.Errorf("num_batches_tracked %d, want one epoch's batches (%d)", bn.Counters[0].Value, (ds.Train.N+31)/32)
	}
	_, back := testkit.SaveAndLoad(t, folded)
	want, got := evaluate(t, kept, ds.Test), evaluate(t, back, ds.Test)
	if math.Abs(want.Loss-got.Loss) > 0.01*want.Loss || math.Abs(want.Accuracy-got.Accuracy) > 0.0125 {
		t.Errorf("folded int8 model: loss %g accuracy %g; with its batch norms: loss %g accuracy %g", got.Loss, got.Accuracy, want.Loss, want.Accuracy)
	}
}
