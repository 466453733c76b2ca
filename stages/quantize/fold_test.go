package quantize_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages/quantize"
)

// TestFoldMatchesTorch folds each case of testdata/quantize/fold.safetensors (made by
// make_fold.py) and compares the convolution's weight and bias with what
// torch's fuse_conv_bn_weights computed, bit for bit.
func TestFoldMatchesTorch(t *testing.T) {
	f, err := checkpoint.ReadFile(filepath.Join(testkit.Root(), "testdata", "quantize", "fold.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"conv_bias", "conv_nobias", "depthwise", "eps", "noaffine"} {
		t.Run(name, func(t *testing.T) {
			var c struct {
				In, Out, Kernel, Groups int
				Bias, Affine            bool
				Eps                     float64
			}
			if err := json.Unmarshal([]byte(f.Metadata[name]), &c); err != nil {
				t.Fatal(err)
			}
			spec := arch.Spec{Input: arch.Shape{c.In, 4, 4}, Classes: 2, Layers: []arch.LayerSpec{
				arch.NewLayer("conv", "conv2d", map[string]any{"out": c.Out, "kernel": c.Kernel, "groups": c.Groups, "bias": c.Bias}),
				arch.NewLayer("bn", "batchnorm2d", map[string]any{"eps": c.Eps, "affine": c.Affine}),
				arch.NewLayer("", "flatten", nil),
				arch.NewLayer("fc", "linear", map[string]any{"out": 2}),
			}}
			m := model.MustNew(spec, rand.New(rand.NewPCG(1, 2)))
			for _, l := range m.Layers {
				for _, set := range [][]*model.Weight{l.Weights, l.Params, l.Buffers} {
					for _, w := range set {
						if l.Name == "fc" {
							continue
						}
						copy(w.Data, testkit.Floats(t, f, name+"."+w.Name))
					}
				}
			}
			before := logits(t, m)
			pairs, err := quantize.FoldBatchNorms(m, []string{"conv"})
			if err != nil {
				t.Fatal(err)
			}
			if pairs["bn"] != "conv" || m.Layer("bn") != nil || len(m.Layers) != 3 {
				t.Fatalf("folded %v; layers left %d", pairs, len(m.Layers))
			}
			conv := m.Layer("conv")
			for _, tc := range []struct {
				got  []float32
				want string
			}{{conv.Weights[0].Data, "fused.weight"}, {conv.Bias().Data, "fused.bias"}} {
				want := testkit.Floats(t, f, name+"."+tc.want)
				for i := range want {
					if math.Float32bits(tc.got[i]) != math.Float32bits(want[i]) {
						t.Errorf("%s[%d] = %g, torch %g", tc.want, i, tc.got[i], want[i])
						break
					}
				}
			}
			// The folded network computes what conv + eval batch norm computed.
			after := logits(t, m)
			if d, s := testkit.MaxDiff(after, before), maxAbs(before); d > 1e-5*max(s, 1) {
				t.Errorf("logits moved by %g (up to %g)", d, s)
			}
			if !strings.Contains(m.Spec.JSON(), `"bias":true`) {
				t.Errorf("the architecture does not give conv a bias: %s", m.Spec.JSON())
			}
		})
	}
}

// TestFoldArch: the batch norms leave the list, the convolutions gain a bias,
// and layers reading a batch norm read its convolution, whether by from or by
// coming next.
func TestFoldArch(t *testing.T) {
	spec := arch.Spec{Arch: arch.ResNet, Depth: 8, Width: 4, Input: arch.Shape{1, 8, 8}, Classes: 3}
	out, pairs, err := quantize.FoldArch(spec, []string{"conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.downsample.0"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"bn1": "conv1", "layer1.0.bn1": "layer1.0.conv1", "layer1.0.bn2": "layer1.0.conv2", "layer2.0.downsample.1": "layer2.0.downsample.0"}
	if !mapsEqual(pairs, want) {
		t.Errorf("pairs %v, want %v", pairs, want)
	}
	g, err := out.Graph()
	if err != nil {
		t.Fatal(err)
	}
	add := g.Node("layer2.0.add")
	var from []string
	for _, i := range add.Inputs {
		from = append(from, g.Nodes[i].Label())
	}
	if !slices.Equal(from, []string{"layer2.0.bn2", "layer2.0.downsample.0"}) {
		t.Errorf("layer2.0.add reads %v", from)
	}
	if add := g.Node("layer1.0.add"); g.Nodes[add.Inputs[0]].Name != "layer1.0.conv2" {
		t.Errorf("layer1.0.add reads %s, want layer1.0.conv2", g.Nodes[add.Inputs[0]].Label())
	}
	for bn := range want {
		if g.Node(bn) != nil {
			t.Errorf("%s is still in the network", bn)
		}
	}
	if g.Node("layer2.0.bn1") == nil {
		t.Error("layer2.0.bn1 follows a convolution the stage does not quantize: it must stay")
	}
	// Nothing to fold: the spec as it was (a preset stays a preset).
	same, pairs, err := quantize.FoldArch(spec, []string{"fc"})
	if err != nil || len(pairs) != 0 || same.JSON() != spec.Normalized().JSON() {
		t.Errorf("folding nothing changed the spec: %v %v", err, pairs)
	}
}

// TestQuantizeResNet quantizes a ResNet, static int8 per-channel: every batch
// norm folds, the checkpoint reloads with the conv biases, the stage's
// ChangeArch predicted the architecture, and the int8 model's logits stay
// close to the float model's.
func TestQuantizeResNet(t *testing.T) {
	ds, cfg := imageData(t)
	spec := arch.Spec{Arch: arch.ResNet, Depth: 8, Width: 4, Input: arch.Shape{1, 4, 4}, Classes: 4}
	float := model.MustNew(spec, rand.New(rand.NewPCG(3, 4)))
	randomizeBN(float)
	c := testkit.Decode(t, "quantize", map[string]any{"mode": "static", "calibration_batches": 2}).(*quantize.Config)
	predicted, err := c.ChangeArch(float.Spec)
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, c, stageContext("q", spec, float, ds, cfg))
	q := res.Model
	if got := q.Spec.JSON(); got != predicted.JSON() {
		t.Errorf("ChangeArch predicted\n%s\nthe stage made\n%s", predicted.JSON(), got)
	}
	for _, l := range q.Layers {
		if strings.HasPrefix(l.Type, "batchnorm") {
			t.Errorf("%s was not folded", l.Name)
		}
		if l.Type == "conv2d" && (l.Bias() == nil || l.Quant == nil || l.Quant.Granularity != "per_channel") {
			t.Errorf("%s: bias %v, quant %v", l.Name, l.Bias() != nil, l.Quant)
		}
	}
	if n := len(res.Metrics["folded_batchnorms"].(map[string]string)); n != 9 {
		t.Errorf("folded %d batch norms, want 9", n)
	}
	_, back := testkit.SaveAndLoad(t, q)
	want, got := logitsOn(t, float, ds.Test), logitsOn(t, back, ds.Test)
	if d, s := testkit.MaxDiff(got, want), maxAbs(want); d > 0.1*s {
		t.Errorf("int8 logits differ from the float model's by %g (up to %g)", d, s)
	}
}

// imageData is synthetic data shaped as 1x4x4 images.
func imageData(t *testing.T) (*data.Dataset, data.Config) {
	cfg := testkit.Synthetic(16, 4, 400, 32)
	return testkit.Load(t, cfg), cfg
}

// randomizeBN gives batch norms statistics and affines that are not the
// identity, so folding has something to fold.
func randomizeBN(m *model.Model) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, l := range m.Layers {
		if !strings.HasPrefix(l.Type, "batchnorm") {
			continue
		}
		for _, w := range append(slices.Clone(l.Params), l.Buffers...) {
			for i := range w.Data {
				if strings.HasSuffix(w.Name, "var") || strings.HasSuffix(w.Name, "weight") {
					w.Data[i] = float32(0.5 + rng.Float64())
				} else {
					w.Data[i] = float32(0.2 * rng.NormFloat64())
				}
			}
		}
	}
}

func logits(t *testing.T, m *model.Model) []float32 {
	t.Helper()
	n, feats := 6, m.Spec.Features()
	rng := rand.New(rand.NewPCG(5, 5))
	x := make([]float32, n*feats)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return logitsOn(t, m, &data.Split{X: x, Y: make([]int32, n), N: n, Features: feats})
}

func logitsOn(t *testing.T, m *model.Model, s *data.Split) []float32 {
	t.Helper()
	out, err := model.Logits(context.Background(), m, s, 32)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func maxAbs(a []float32) float64 { return testkit.MaxDiff(a, make([]float32, len(a))) }

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
