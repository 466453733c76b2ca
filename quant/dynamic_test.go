package quant_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/quant"
)

// ChooseParams against ATen's ChooseQuantizationParams itself
// (torch._choose_qparams_per_tensor, testdata/dynamic/make_dynamic.py), on
// ranges reaching every branch: bit for bit, scale and zero point.
func TestChooseParamsMatchesATen(t *testing.T) {
	f, err := checkpoint.ReadFile(filepath.Join(testkit.Root(), "testdata", "dynamic", "qparams.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		qmin, qmax int32
	}{{"reduced", 0, 127}, {"full", 0, 255}} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi := testkit.Floats(t, f, tc.name+".lo"), testkit.Floats(t, f, tc.name+".hi")
			scale := testkit.Floats(t, f, tc.name+".scale")
			zt, _ := f.Get(tc.name + ".zero_point")
			zp, err := zt.Int64s()
			if err != nil {
				t.Fatal(err)
			}
			if len(lo) < 300 {
				t.Fatalf("only %d vectors", len(lo))
			}
			for i := range lo {
				s, z := quant.ChooseParams(lo[i], hi[i], tc.qmin, tc.qmax)
				if math.Float32bits(s) != math.Float32bits(scale[i]) || int64(z) != zp[i] {
					t.Errorf("[%g, %g]: scale %g zero point %d, ATen %g %d", lo[i], hi[i], s, z, scale[i], zp[i])
				}
			}
		})
	}
}

// A reduce_range spec is the unsigned half range with ChooseParams' rule.
func TestReduceRangeSpec(t *testing.T) {
	s := quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor, ReduceRange: true}
	if lo, hi := s.Range(); lo != 0 || hi != 127 {
		t.Fatalf("range [%d, %d], want [0, 127]", lo, hi)
	}
	for _, r := range [][2]float32{{-0.3, 2.7}, {0, 0}, {-1e-6, 2e-6}, {1, 5}} {
		scale, zp := quant.ChooseParams(r[0], r[1], 0, 127)
		p := s.ObserveRange(r[0], r[1])
		if p.Scale[0] != scale || p.ZeroPoint[0] != zp {
			t.Errorf("%v: observed %v, ChooseParams %g %d", r, p, scale, zp)
		}
		if s2, z2 := s.ParamsOf(r[0], r[1]); s2 != scale || z2 != zp {
			t.Errorf("%v: ParamsOf %g %d, ChooseParams %g %d", r, s2, z2, scale, zp)
		}
	}
}
