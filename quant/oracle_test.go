package quant_test

import (
	"math"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/quant"
)

// The PyTorch vectors (../shared/oracle, copied into testdata/oracle): torch.ao
// observers followed by quantize_per_tensor / quantize_per_channel. Integers and zero
// points must match exactly, scales within 1e-6 relative.

func readOracle(t *testing.T, name string) *checkpoint.File { return testkit.Oracle(t, name) }

// floats reads an F32 tensor and its shape.
func floats(t *testing.T, f *checkpoint.File, name string) ([]float32, []int) {
	tn, _ := f.Get(name)
	v := testkit.Floats(t, f, name)
	return v, tn.Shape
}

func ints(t *testing.T, f *checkpoint.File, name string) []int32 { return testkit.Int8s(t, f, name) }

// checkAgainst quantizes w (shaped shape) with spec and compares the result with the
// oracle's weight, weight_scale and weight_zero_point under prefix p.
func checkAgainst(t *testing.T, spec quant.Spec, w []float32, shape []int, want *checkpoint.File, p string) {
	t.Helper()
	params := spec.ParamsFor(w, shape)
	wantScale, scaleShape := floats(t, want, p+".weight_scale")
	wantZP := ints(t, want, p+".weight_zero_point")
	wantQ := ints(t, want, p+".weight")
	if len(params.Scale) != len(wantScale) {
		t.Fatalf("%s: %d scales, oracle has %d (shape %v)", p, len(params.Scale), len(wantScale), scaleShape)
	}
	for c := range wantScale {
		// Bit for bit: the scale is computed in float32 in PyTorch's order.
		if params.Scale[c] != wantScale[c] {
			t.Errorf("%s: scale[%d] = %g, oracle %g (relative error %.2g)", p, c, params.Scale[c], wantScale[c],
				math.Abs(float64(params.Scale[c]-wantScale[c]))/float64(wantScale[c]))
		}
		if params.ZeroPoint[c] != wantZP[c] {
			t.Errorf("%s: zero_point[%d] = %d, oracle %d", p, c, params.ZeroPoint[c], wantZP[c])
		}
	}
	q := make([]int32, len(w))
	spec.Quantize(w, params, q)
	off := 0
	for i := range q {
		if q[i] != wantQ[i] {
			off++
			if off <= 5 {
				t.Errorf("%s: q[%d] = %d, oracle %d (w = %g)", p, i, q[i], wantQ[i], w[i])
			}
		}
	}
	if off > 0 {
		t.Errorf("%s: %d of %d integers differ from PyTorch", p, off, len(q))
	}
}

var observers = []struct {
	file        string
	scheme      quant.Scheme
	granularity quant.Granularity
}{
	{"sym_per_tensor", quant.Symmetric, quant.PerTensor},
	{"sym_per_channel", quant.Symmetric, quant.PerChannel},
	{"asym_per_tensor", quant.Asymmetric, quant.PerTensor},
	{"asym_per_channel", quant.Asymmetric, quant.PerChannel},
}

func TestOracleMLP(t *testing.T) {
	model := readOracle(t, "mlp_s1.safetensors")
	for _, bits := range []int{8, 4} {
		for _, o := range observers {
			file := "quant_" + o.file + ".safetensors"
			if bits == 4 {
				file = "quant4_" + o.file + ".safetensors"
			}
			t.Run(file, func(t *testing.T) {
				want := readOracle(t, file)
				spec := quant.Spec{Bits: bits, Scheme: o.scheme, Granularity: o.granularity}
				for _, layer := range []string{"fc1", "fc2", "fc3"} {
					w, shape := floats(t, model, layer+".weight")
					checkAgainst(t, spec, w, shape, want, layer)
				}
			})
		}
	}
}

// quantize_dynamic's weights are the symmetric observers' (per tensor by default,
// per channel with per_channel_dynamic_qconfig).
func TestOracleDynamic(t *testing.T) {
	model := readOracle(t, "mlp_s1.safetensors")
	for _, tc := range []struct {
		file        string
		granularity quant.Granularity
	}{
		{"quant_dynamic.safetensors", quant.PerTensor},
		{"quant_dynamic_per_channel.safetensors", quant.PerChannel},
	} {
		t.Run(tc.file, func(t *testing.T) {
			want := readOracle(t, tc.file)
			spec := quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: tc.granularity}
			for _, layer := range []string{"fc1", "fc2", "fc3"} {
				w, shape := floats(t, model, layer+".weight")
				checkAgainst(t, spec, w, shape, want, layer)
			}
		})
	}
}

// quant_edges: an all-zero row, one-signed rows, a constant row, a row spanning
// [-1, 1] and a row of tiny values.
func TestOracleEdges(t *testing.T) {
	f := readOracle(t, "quant_edges.safetensors")
	w, shape := floats(t, f, "edge.input")
	for _, o := range observers {
		t.Run(o.file, func(t *testing.T) {
			spec := quant.Spec{Bits: 8, Scheme: o.scheme, Granularity: o.granularity}
			checkAgainst(t, spec, w, shape, f, "edge."+o.file)
		})
	}
}

// An all-zero channel gets scale epsilon and codes 0 (symmetric) or qmin (affine),
// which stand for exactly 0.
func TestAllZeroChannel(t *testing.T) {
	for _, scheme := range []quant.Scheme{quant.Symmetric, quant.Asymmetric} {
		for _, bits := range []int{2, 4, 8} {
			spec := quant.Spec{Bits: bits, Scheme: scheme, Granularity: quant.PerChannel}
			w := []float32{0, 0, 0, 1, -2, 3}
			p := spec.ParamsFor(w, []int{2, 3})
			if p.Scale[0] != quant.Epsilon {
				t.Errorf("%v: zero channel scale %g, want epsilon", spec, p.Scale[0])
			}
			q := make([]int32, len(w))
			spec.Quantize(w, p, q)
			back := make([]float32, len(w))
			quant.Dequantize(q, p, back)
			qmin, _ := spec.Range()
			wantQ := int32(0)
			if scheme == quant.Asymmetric {
				wantQ = qmin
			}
			for i := 0; i < 3; i++ {
				if q[i] != wantQ || back[i] != 0 {
					t.Errorf("%v: zero channel q[%d] = %d (back %g), want %d standing for 0", spec, i, q[i], back[i], wantQ)
				}
			}
		}
	}
}
