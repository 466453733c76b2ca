package nn_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
)

// layer decodes one layer of a recipe.
func layer(t *testing.T, raw map[string]any) arch.LayerSpec {
	t.Helper()
	var l arch.LayerSpec
	if err := l.DecodeConfig(raw); err != nil {
		t.Fatalf("%v: %v", raw, err)
	}
	return l
}

// TestShapeRules feeds each layer type random input shapes (ranks 0 to 4,
// sides 1 to 9) and checks its output shape, or that it refuses the input
// with a message saying what it takes.
func TestShapeRules(t *testing.T) {
	same := func(in arch.Shape) (arch.Shape, string) { return in, "" }
	for _, tc := range []struct {
		raw  map[string]any
		rule func(in arch.Shape) (out arch.Shape, err string)
	}{
		{map[string]any{"type": "relu6"}, same},
		{map[string]any{"type": "sigmoid"}, same},
		{map[string]any{"type": "tanh"}, same},
		{map[string]any{"type": "silu"}, same},
		{map[string]any{"type": "gelu"}, same},
		{map[string]any{"type": "gelu", "approximate": "tanh"}, same},
		{map[string]any{"type": "dropout", "p": 0.2}, same},
		{map[string]any{"type": "layernorm", "name": "ln"}, func(in arch.Shape) (arch.Shape, string) {
			if len(in) == 0 {
				return nil, "at least one dimension"
			}
			return in, ""
		}},
		{map[string]any{"type": "embedding", "name": "emb", "num": 20, "dim": 4}, func(in arch.Shape) (arch.Shape, string) {
			if len(in) != 1 {
				return nil, "token ids [T]"
			}
			return arch.Shape{in[0], 4}, ""
		}},
	} {
		l := layer(t, tc.raw)
		t.Run(l.Type+strings.TrimPrefix(string(mustJSON(t, l)), "{"), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(len(l.Type)), 8))
			for range 300 {
				in := make(arch.Shape, rng.IntN(5))
				for i := range in {
					in[i] = 1 + rng.IntN(9)
				}
				got, err := l.Config.Shape([]arch.Shape{in})
				want, wantErr := tc.rule(in)
				switch {
				case wantErr != "" && err == nil:
					t.Fatalf("input %v: output %v, want an error about %q", in, got, wantErr)
				case wantErr != "" && !strings.Contains(err.Error(), wantErr):
					t.Fatalf("input %v: error %q does not say %q", in, err, wantErr)
				case wantErr == "" && err != nil:
					t.Fatalf("input %v: %v", in, err)
				case wantErr == "" && !slices.Equal(got, want):
					t.Fatalf("input %v: output %v, want %v", in, got, want)
				}
				if err == nil {
					for _, ts := range l.Config.Tensors([]arch.Shape{in}) {
						if arch.Shape(ts.Shape).Size() == 0 {
							t.Fatalf("input %v: tensor %s has shape %v", in, ts.Suffix, ts.Shape)
						}
					}
				}
			}
		})
	}
}

// TestLayerErrors checks the messages of bad keys and of networks whose
// shapes do not fit, with the key paths a recipe's diagnostics point at.
func TestLayerErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  map[string]any
		want []string // each must appear in the error
	}{
		{"embedding without keys", map[string]any{"type": "embedding", "name": "e"}, []string{"num: missing", "dim: missing"}},
		{"embedding num 0", map[string]any{"type": "embedding", "name": "e", "num": 0, "dim": 3}, []string{"num"}},
		{"embedding vocabulary beyond float32", map[string]any{"type": "embedding", "name": "e", "num": 1<<24 + 1, "dim": 3}, []string{"num", "2^24"}},
		{"gelu approximate unknown", map[string]any{"type": "gelu", "approximate": "fast"}, []string{"approximate", "tanh"}},
		{"dropout p above 1", map[string]any{"type": "dropout", "p": 1.5}, []string{"p"}},
		{"dropout p below 0", map[string]any{"type": "dropout", "p": -0.1}, []string{"p"}},
		{"layernorm eps 0", map[string]any{"type": "layernorm", "name": "ln", "eps": 0}, []string{"eps"}},
		{"activation with a key", map[string]any{"type": "silu", "out": 3}, []string{"out"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l arch.LayerSpec
			err := l.DecodeConfig(tc.raw)
			if err == nil {
				t.Fatalf("%v decodes", tc.raw)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	for _, tc := range []struct {
		name  string
		input arch.Shape
		specs []map[string]any
		want  []string
	}{
		{"embedding after a linear", arch.Shape{6},
			[]map[string]any{{"name": "fc", "type": "linear", "out": 5}, {"name": "e", "type": "embedding", "num": 9, "dim": 2}, {"type": "flatten"}, {"name": "o", "type": "linear", "out": 3}},
			[]string{"layers.1", "must be the first layer"}},
		{"embedding reading the first layer by from", arch.Shape{6},
			[]map[string]any{{"name": "e0", "type": "embedding", "num": 9, "dim": 2}, {"name": "e", "type": "embedding", "num": 9, "dim": 2, "from": "e0"}, {"type": "flatten"}, {"name": "o", "type": "linear", "out": 3}},
			[]string{"layers.1", "integer token ids"}},
		{"embedding on images", arch.Shape{1, 4, 4},
			[]map[string]any{{"name": "e", "type": "embedding", "num": 9, "dim": 2}, {"type": "flatten"}, {"name": "o", "type": "linear", "out": 3}},
			[]string{"layers.0", "token ids [T]", "[1, 4, 4]"}},
		{"layernorm without a name", arch.Shape{6},
			[]map[string]any{{"type": "layernorm"}, {"name": "o", "type": "linear", "out": 3}},
			[]string{"layers.0", "give it a name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := arch.Spec{Input: tc.input, Classes: 3}
			for _, raw := range tc.specs {
				spec.Layers = append(spec.Layers, layer(t, raw))
			}
			_, err := spec.Graph()
			if err == nil {
				t.Fatal("the graph builds")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func mustJSON(t *testing.T, l arch.LayerSpec) []byte {
	t.Helper()
	b, err := l.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
