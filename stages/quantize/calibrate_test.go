package quantize_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages/quantize"
)

// TestCalibrateResNetInputs calibrates a static int8 ResNet-8 on the rows of
// testdata/quantize/calibrate.safetensors (made by make_calibrate.py there) and compares
// every quantized layer's input range with the min and max PyTorch's forward
// pre-hooks saw on the same weights and rows: the ranges are those of the
// tensors the layers really read in the graph (after the residual adds and
// their ReLUs, after the average pool), with the batch norms kept and folded.
func TestCalibrateResNetInputs(t *testing.T) {
	f, err := checkpoint.ReadFile(filepath.Join(testkit.Root(), "testdata", "quantize", "calibrate.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var section map[string]any
	if err := json.Unmarshal([]byte(f.Metadata["model"]), &section); err != nil {
		t.Fatal(err)
	}
	spec := arch.Default()
	if errs := config.Decode(testkit.JSONInts(section).(map[string]any), spec); len(errs) > 0 {
		t.Fatal(errs)
	}
	float := model.MustNew(*spec, rand.New(rand.NewPCG(1, 1)))
	for _, l := range float.Layers {
		for _, set := range [][]*model.Weight{l.Weights, l.Params, l.Buffers} {
			for _, w := range set {
				copy(w.Data, testkit.Floats(t, f, w.Name))
			}
		}
	}
	x := testkit.Floats(t, f, "input")
	rows := &data.Split{X: x, Y: make([]int32, 64), N: 64, Features: spec.Features()}
	ds := &data.Dataset{Kind: "synthetic", Train: rows, Test: rows, Features: rows.Features, Classes: 3}
	cfg := testkit.Synthetic(rows.Features, 3, 64, 16)
	cfg.Shuffle = false
	for _, keep := range []bool{true, false} {
		name := map[bool]string{true: "batch norms kept", false: "batch norms folded"}[keep]
		t.Run(name, func(t *testing.T) {
			c := testkit.Decode(t, "quantize", map[string]any{"mode": "static", "calibration_batches": 4, "keep_batchnorm": keep}).(*quantize.Config)
			q := run(t, c, stageContext("q", *spec, float.Clone(), ds, cfg)).Model
			n := 0
			for _, l := range q.WeightLayers() {
				want := testkit.Floats(t, f, "range."+l.Name)
				got := []float64{float64(l.Input.RangeMin), float64(l.Input.RangeMax)}
				for i := range want {
					// Kept batch norms: the same float32 arithmetic up to
					// summation order; folded: the conv's fused weights round.
					if d := math.Abs(got[i] - float64(want[i])); d > 1e-5*max(math.Abs(float64(want[i])), 1) {
						t.Errorf("%s: input range [%g, %g], PyTorch saw [%g, %g]", l.Name, got[0], got[1], want[0], want[1])
						break
					}
				}
				n++
			}
			if n != 10 {
				t.Errorf("%d quantized layers, want the ResNet-8's 10 convolutions and linear", n)
			}
		})
	}
}
