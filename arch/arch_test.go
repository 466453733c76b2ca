package arch_test

import (
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	_ "github.com/shrink-ml/shrink/nn" // the layer types
)

// spec decodes a model section written in YAML, as a recipe holds it.
func spec(t *testing.T, src string) (*arch.Spec, config.Errors) {
	t.Helper()
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(src), &raw); err != nil {
		t.Fatal(err)
	}
	s := arch.Default()
	return s, config.Decode(raw, s)
}

// The canonical JSON of the v1 presets is hashed into stage keys and stored in
// checkpoints: it must never change.
func TestV1PresetsKeepTheirJSON(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`{arch: mlp, inputs: 784, classes: 10}`, `{"arch":"mlp","inputs":784,"hidden":[300,100],"classes":10}`},
		{`{arch: mlp, inputs: 784, hidden: [30], classes: 10}`, `{"arch":"mlp","inputs":784,"hidden":[30],"classes":10}`},
		{`{arch: lenet5, classes: 10}`, `{"arch":"lenet5","inputs":784,"hidden":[120,84],"channels":[6,16],"classes":10}`},
		{`{arch: lenet5, channels: [20, 50], hidden: [500, 84], classes: 10}`, `{"arch":"lenet5","inputs":784,"hidden":[500,84],"channels":[20,50],"classes":10}`},
	} {
		s, errs := spec(t, tc.src)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if got := s.JSON(); got != tc.want {
			t.Errorf("%s: JSON %s, want %s", tc.src, got, tc.want)
		}
	}
}

// Every spec survives the trip through checkpoint metadata.
func TestJSONRoundTrip(t *testing.T) {
	for _, src := range []string{
		`{arch: mlp, inputs: 20, hidden: [8, 6], classes: 3}`,
		`{arch: lenet5, classes: 10}`,
		`{arch: resnet, depth: 14, width: 8, input: [3, 32, 32], classes: 10}`,
		`{arch: lstm, hidden: 32, num_layers: 2, input: [28, 28], classes: 10}`,
		`{input: [2, 8, 8], classes: 4, layers: [
			{name: c1, type: conv2d, out: 6, kernel: [3, 1], stride: 2, padding: [1, 0], groups: 2, bias: false},
			{name: b1, type: batchnorm2d, eps: 0.001, momentum: 0.3, affine: false},
			{type: relu}, {name: skip, type: maxpool2d, kernel: 2, padding: 1},
			{type: flatten}, {name: fc, type: linear, out: 4}]}`,
	} {
		if _, ok := arch.LayerTypeOf("lstm"); !ok && strings.Contains(src, "lstm") {
			continue // the lstm type is not in this build yet
		}
		s, errs := spec(t, src)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", src, errs)
		}
		back, err := arch.Parse(s.JSON())
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if back.JSON() != s.JSON() {
			t.Errorf("round trip changed\n%s\nto\n%s", s.JSON(), back.JSON())
		}
	}
}

func TestGraphShapesAndCounts(t *testing.T) {
	s, errs := spec(t, `{arch: resnet, depth: 20, input: [3, 32, 32], classes: 10}`)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	g, err := s.Graph()
	if err != nil {
		t.Fatal(err)
	}
	// He et al.'s ResNet-20 for CIFAR-10 has 0.27M parameters; with 1x1
	// projection shortcuts (option B) it is 272,474, PyTorch's count.
	if got := g.Params(); got != 272474 {
		t.Errorf("ResNet-20 has %d parameters, want 272,474", got)
	}
	if got := g.Node("layer3.2.relu2").Out; !slices.Equal(got, arch.Shape{64, 8, 8}) {
		t.Errorf("layer3's output is %v, want [64, 8, 8]", got)
	}
	if got := len(g.WeightLayers()); got != 22 { // 19 convs, 2 downsample convs, fc
		t.Errorf("%d layers with weights, want 22", got)
	}
}

// Errors name the key of the model section at fault and say what to do.
func TestGraphErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"unknown from", `{input: [4], classes: 2, layers: [{name: a, type: linear, out: 3}, {type: add, from: [a, b]}, {name: o, type: linear, out: 2}]}`,
			`layers.1.from.1: no layer is named "b" before this one (earlier layers: a)`},
		{"forward from", `{input: [4], classes: 2, layers: [{name: a, type: linear, out: 2, from: b}, {name: b, type: linear, out: 2}]}`,
			`layer "b" comes later`},
		{"duplicate name", `{input: [4], classes: 2, layers: [{name: a, type: linear, out: 2}, {name: a, type: linear, out: 2}]}`,
			`layers.1.name: layer name "a" is already layer 0's`},
		{"tensors need a name", `{input: [4], classes: 2, layers: [{type: linear, out: 2}]}`,
			`give it a name`},
		{"add of one", `{input: [4], classes: 2, layers: [{name: a, type: linear, out: 2}, {type: add, from: [a]}]}`,
			`layers.1.from: add combines two or more layers`},
		{"wrong outputs", `{input: [4], classes: 3, layers: [{name: a, type: linear, out: 2}]}`,
			`classes: the last layer (a) outputs [2] per sample, but the model needs 3 logits`},
		{"conv on vectors", `{input: [784], classes: 2, layers: [{name: c, type: conv2d, out: 2, kernel: 3}]}`,
			`takes images [channels, height, width], not [784]`},
		{"image too small", `{input: [1, 2, 2], classes: 2, layers: [{name: c, type: conv2d, out: 2, kernel: 3}]}`,
			`smaller than the kernel`},
		{"no input", `{classes: 2, layers: [{name: a, type: linear, out: 2}]}`,
			`input: one sample's shape is not known`},
		{"add of mismatched shapes", `{input: [4], classes: 2, layers: [{name: a, type: linear, out: 3}, {name: b, type: linear, out: 2}, {type: add, from: [a, b]}]}`,
			`adds tensors of one shape, not [3] and [2]`},
		{"two sources", `{arch: mlp, inputs: 4, classes: 2, layers: [{name: a, type: linear, out: 2}]}`,
			`give only one of arch, layers and onnx`},
		// Sizes that would overflow an int, or fail to allocate, on the way to a run.
		{"weight beyond 2^46 values", `{input: [4], classes: 2, layers: [{name: a, type: linear, out: 4611686018427387904}, {name: o, type: linear, out: 2}]}`,
			`layers.0: a (linear) on input [4]: its weight would hold 1.84e+19 values (shape [4611686018427387904, 4]), more than 2^46`},
		{"preset weight beyond 2^46 values", `{arch: mlp, inputs: 65536, hidden: [2147483648], classes: 2}`,
			`its weight would hold 1.41e+14 values (shape [2147483648, 65536]), more than 2^46`},
		{"output beyond 2^46 values", `{input: [1, 1024, 1024], classes: 2, layers: [{name: c, type: conv2d, out: 134217728, kernel: 1, bias: false}, {type: adaptive_avgpool2d}, {type: flatten}, {name: o, type: linear, out: 2}]}`,
			`its output would hold 1.41e+14 values per sample (shape [134217728, 1024, 1024]), more than 2^46`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, errs := spec(t, tc.src)
			var err error = errs.Err()
			if err == nil {
				_, err = s.Graph()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`{arch: mlp, hidden: [], classes: 2}`, "hidden: an empty list"},
		{`{arch: lstm, hidden: [4, 5], classes: 2}`, "an lstm has one hidden size"},
		{`{arch: resnet, depth: 21, classes: 2}`, "6n+2 layers"},
		// Expanding these would exhaust memory while validating.
		{`{arch: resnet, depth: 6000000002, classes: 2}`, "depth: 6000000002 is above the maximum 10000"},
		{`{arch: lstm, num_layers: 100000000, classes: 2}`, "num_layers: 100000000 is above the maximum 1000"},
		{`{input: [4, 3], classes: 2, layers: [{name: l, type: lstm, hidden: 2, num_layers: 1001}]}`, "layers.0.num_layers: 1001 is above the maximum 1000"},
		{`{arch: mlp, depth: 20, classes: 2}`, "depth: applies only to resnet, not arch mlp"},
		{`{input: [4], classes: 2, layers: [{name: a, type: lineer, out: 2}]}`, `unknown layer type "lineer"`},
		{`{input: [4], classes: 2, layers: [{name: a, type: linear, out: 2, kernel: 3}]}`, `layers.0.kernel: unknown key`},
		{`{input: [4], classes: 2, layers: [{name: a, type: linear}]}`, `layers.0.out: missing`},
		{`{input: [4], classes: 2, layers: [{name: a, type: conv2d, out: 2, kernel: [3, 3, 3]}]}`, `one number or [height, width]`},
	} {
		_, errs := spec(t, tc.src)
		if err := errs.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.src, err, tc.want)
		}
	}
}

func TestLSTMHiddenTakesANumber(t *testing.T) {
	s, errs := spec(t, `{arch: lstm, hidden: 64, input: [28, 28], classes: 10}`)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if !slices.Equal(s.Hidden, arch.Widths{64}) {
		t.Errorf("hidden %v, want [64]", s.Hidden)
	}
}

func TestSelectors(t *testing.T) {
	layers := []string{"conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "layer2.0.conv2", "layer2.0.downsample.0", "fc"}
	for _, tc := range []struct {
		sel  []string
		want []string
		err  string
	}{
		{sel: []string{"fc"}, want: []string{"fc"}},
		{sel: []string{"layer*.conv2"}, want: []string{"layer1.0.conv2", "layer2.0.conv2"}},
		{sel: []string{"layer2.*"}, want: []string{"layer2.0.conv1", "layer2.0.conv2", "layer2.0.downsample.0"}},
		{sel: []string{`re:^layer[12]\..*conv1$`, "fc"}, want: []string{"layer1.0.conv1", "layer2.0.conv1", "fc"}},
		{sel: []string{"re:conv", "layer1.0.conv1"}, want: []string{"conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "layer2.0.conv2"}},
		{sel: []string{"fc2"}, err: `layer "fc2" is not in the model (its layers: conv1, layer1.0.conv1`},
		{sel: []string{"layer9.*"}, err: `"layer9.*" matches none of the layers`},
		{sel: []string{"re:("}, err: "bad regular expression"},
		{sel: []string{"layer[1"}, err: "bad glob pattern"},
	} {
		got, err := arch.Expand(tc.sel, layers, "layers")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want one containing %q", tc.sel, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%v: %v, %v; want %v", tc.sel, got, err, tc.want)
		}
	}
}
