package model_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
)

var actSpec = quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}

func randomSplit(n, features int, seed uint64) *data.Split {
	r := rand.New(rand.NewPCG(seed, seed))
	s := &data.Split{X: make([]float32, n*features), Y: make([]int32, n), N: n, Features: features}
	for i := range s.X {
		s.X[i] = float32(r.NormFloat64())
	}
	return s
}

// reference is the forward pass written out by hand: each quantized layer's input
// goes through quantize-dequantize with params(layer, rows), then x W^T + b, then
// ReLU except after the last layer. It returns the logits and every layer's input.
func reference(m *model.Model, x []float32, rows int, params func(l *model.Layer, h []float32) *quant.Params) ([]float32, map[string][]float32) {
	inputs := map[string][]float32{}
	h := slices.Clone(x)
	for i, l := range m.WeightLayers() {
		inputs[l.Name] = slices.Clone(h)
		if p := params(l, h); p != nil {
			l.Input.Spec.FakeQuantize(h, *p, h)
		}
		w := l.Weights[0]
		out, in := w.Shape[0], w.Shape[1]
		next := make([]float32, rows*out)
		for r := 0; r < rows; r++ {
			for o := 0; o < out; o++ {
				var s float64
				for k := 0; k < in; k++ {
					s += float64(h[r*in+k]) * float64(w.Data[o*in+k])
				}
				v := float32(s) + l.Bias().Data[o]
				if i < len(m.WeightLayers())-1 {
					v = max(v, 0)
				}
				next[r*out+o] = v
			}
		}
		h = next
	}
	return h, inputs
}

func minMax(v []float32) (float32, float32) { return slices.Min(v), slices.Max(v) }

// Calibration records each static input's min and max over every calibration row,
// whatever the batch size (a short last batch's padding is not observed).
func TestCalibrateMinMax(t *testing.T) {
	a := arch.Spec{Arch: "mlp", Inputs: 7, Hidden: []int{6, 5}, Classes: 3}
	calib := randomSplit(10, 7, 1)
	var ranges [][2]float32
	for _, bs := range []int{10, 4, 3, 1} {
		m := model.MustNew(a, rand.New(rand.NewPCG(2, 2)))
		for _, l := range m.WeightLayers() {
			l.Input = &model.ActQuant{Mode: "static", Spec: actSpec}
		}
		if err := model.Calibrate(context.Background(), m, calib, model.CalibrateOptions{BatchSize: bs}); err != nil {
			t.Fatal(err)
		}
		_, inputs := reference(m, calib.X, calib.N, func(*model.Layer, []float32) *quant.Params { return nil })
		for i, l := range m.WeightLayers() {
			lo, hi := minMax(inputs[l.Name])
			if l.Input.RangeMin != lo || l.Input.RangeMax != hi {
				// The hand-written product sums in float64: allow its rounding.
				if math.Abs(float64(l.Input.RangeMin-lo)) > 1e-5 || math.Abs(float64(l.Input.RangeMax-hi)) > 1e-5 {
					t.Errorf("batch %d: %s range [%g, %g], want [%g, %g]", bs, l.Name, l.Input.RangeMin, l.Input.RangeMax, lo, hi)
				}
			}
			want := actSpec.Observe([]float32{l.Input.RangeMin}, []float32{l.Input.RangeMax})
			if !slices.Equal(l.Input.Params.Scale, want.Scale) || !slices.Equal(l.Input.Params.ZeroPoint, want.ZeroPoint) {
				t.Errorf("%s: params %+v, want %+v", l.Name, l.Input.Params, want)
			}
			if bs == 10 {
				ranges = append(ranges, [2]float32{l.Input.RangeMin, l.Input.RangeMax})
			} else if r := ranges[i]; r != [2]float32{l.Input.RangeMin, l.Input.RangeMax} {
				t.Errorf("batch %d: %s range [%g, %g], one batch of 10 gives %v", bs, l.Name, l.Input.RangeMin, l.Input.RangeMax, r)
			}
		}
	}
}

// The percentile observer ignores the rarest values; min-max does not.
func TestCalibratePercentile(t *testing.T) {
	a := arch.Spec{Arch: "mlp", Inputs: 10, Hidden: []int{4}, Classes: 2}
	calib := &data.Split{X: make([]float32, 100*10), Y: make([]int32, 100), N: 100, Features: 10}
	for i := range calib.X {
		calib.X[i] = float32(i%10) / 10 // 0 .. 0.9
	}
	calib.X[17] = 50 // one outlier in a thousand
	for _, tc := range []struct {
		percentile float64
		wantMax    float32
	}{{0, 50}, {99.9, 0.9}, {100, 50}} {
		m := model.MustNew(a, rand.New(rand.NewPCG(2, 2)))
		m.WeightLayers()[0].Input = &model.ActQuant{Mode: "static", Spec: actSpec}
		if err := model.Calibrate(context.Background(), m, calib, model.CalibrateOptions{BatchSize: 32, Percentile: tc.percentile}); err != nil {
			t.Fatal(err)
		}
		if got := m.WeightLayers()[0].Input.RangeMax; got != tc.wantMax {
			t.Errorf("percentile %g: max %g, want %g", tc.percentile, got, tc.wantMax)
		}
		if m.WeightLayers()[1].Input != nil {
			t.Errorf("fc2 has no input quantization and must get none")
		}
	}
}

// Evaluation is faithful: a static layer's input is quantized with its calibrated
// parameters, a dynamic one's with the range of the real rows of its batch, even
// in a short last batch padded to the batch size.
func TestEvaluateQuantizedInputs(t *testing.T) {
	a := arch.Spec{Arch: "mlp", Inputs: 7, Hidden: []int{6}, Classes: 3}
	test := randomSplit(10, 7, 3)
	for i, x := range test.X {
		test.X[i] = float32(math.Abs(float64(x)))
	}
	for _, mode := range []string{"static", "dynamic"} {
		t.Run(mode, func(t *testing.T) {
			m := model.MustNew(a, rand.New(rand.NewPCG(4, 4)))
			// Hidden unit 0 is off for every real row but would be 10 for an
			// all-zero padding row, stretching a dynamic range that saw it.
			fc1 := m.WeightLayers()[0]
			fc1.Bias().Data[0] = 10
			for k := 0; k < 7; k++ {
				fc1.Weights[0].Data[k] = -3
			}
			for _, l := range m.WeightLayers() {
				l.Input = &model.ActQuant{Mode: mode, Spec: actSpec}
			}
			if mode == "static" {
				// Calibrated on other data, so the test rows fall partly outside.
				if err := model.Calibrate(context.Background(), m, randomSplit(5, 7, 9), model.CalibrateOptions{BatchSize: 5}); err != nil {
					t.Fatal(err)
				}
			}
			const bs = 4
			got, err := model.Logits(context.Background(), m, test, bs)
			if err != nil {
				t.Fatal(err)
			}
			for start := 0; start < test.N; start += bs {
				n := min(bs, test.N-start)
				x := test.X[start*7 : (start+n)*7]
				want, _ := reference(m, x, n, func(l *model.Layer, h []float32) *quant.Params {
					if mode == "static" {
						return &l.Input.Params
					}
					lo, hi := minMax(h)
					p := actSpec.Observe([]float32{lo}, []float32{hi})
					return &p
				})
				for i, w := range want {
					if g := got[start*3+i]; math.Abs(float64(g-w)) > 1e-5 {
						t.Fatalf("row %d logit %d: %g, want %g", start+i/3, i%3, g, w)
					}
				}
			}
		})
	}
}
