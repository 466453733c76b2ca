package arch_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/internal/testkit"
	_ "github.com/shrink-ml/shrink/nn" // the layer types
)

// TestPresetsMatchPyTorch checks every preset's expansion against what
// tools/torchref/shrinkmodel.py expands it to (testdata/layers/presets.json,
// written by make_layers.py): the same layers with the same names, types,
// keys and from edges, the same input shape, and the same state_dict names
// in PyTorch's order.
func TestPresetsMatchPyTorch(t *testing.T) {
	raw, err := os.ReadFile("../testdata/layers/presets.json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []struct {
		Preset    map[string]any   `json:"preset"`
		Input     []int            `json:"input"`
		Classes   int              `json:"classes"`
		Layers    []map[string]any `json:"layers"`
		StateDict []string         `json:"state_dict"`
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatalf("presets.json: %v", err)
	}
	if len(entries) == 0 {
		t.Fatal("presets.json lists no presets")
	}
	seen := map[string]bool{}
	for _, e := range entries {
		pre, _ := json.Marshal(e.Preset)
		t.Run(string(pre), func(t *testing.T) {
			for _, l := range e.Layers {
				if typ, _ := l["type"].(string); !registered(typ) {
					t.Skipf("layer type %s is not implemented yet", typ)
				}
			}
			spec := arch.Default()
			if errs := config.Decode(testkit.JSONInts(e.Preset).(map[string]any), spec); len(errs) > 0 {
				t.Fatalf("preset: %v", errs)
			}
			seen[spec.Arch] = true
			list, err := spec.List()
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != len(e.Layers) {
				t.Errorf("%d layers, PyTorch's expansion has %d", len(list), len(e.Layers))
			}
			for i := range min(len(list), len(e.Layers)) {
				var want arch.LayerSpec
				if err := want.DecodeConfig(testkit.JSONInts(e.Layers[i])); err != nil {
					t.Fatalf("presets.json layer %d: %v", i, err)
				}
				got := list[i]
				if got.Name != want.Name || got.Type != want.Type || !slices.Equal(got.From, want.From) {
					t.Errorf("layer %d is {name %q, type %s, from %v}, want {name %q, type %s, from %v}", i, got.Name, got.Type, got.From, want.Name, want.Type, want.From)
					continue
				}
				// Keys compare with defaults filled in on both sides: the Python
				// expansion leaves defaults out, Go's writes them all.
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(want)
				if string(gj) != string(wj) {
					t.Errorf("layer %d (%s) is %s, want %s", i, got.Name, gj, wj)
				}
			}
			g, err := spec.Graph()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal([]int(g.Input), e.Input) || g.Classes != e.Classes {
				t.Errorf("input %v and %d classes, want %v and %d", g.Input, g.Classes, e.Input, e.Classes)
			}
			var names []string
			for _, n := range g.Nodes {
				for _, ts := range n.Tensors() {
					names = append(names, n.TensorName(ts.Suffix))
				}
			}
			if !slices.Equal(names, e.StateDict) {
				t.Errorf("state_dict names\n%s\nwant (PyTorch's order)\n%s", strings.Join(names, " "), strings.Join(e.StateDict, " "))
			}
		})
	}
	for _, a := range []string{arch.MLP, arch.LeNet5, arch.ResNet, arch.LSTM} {
		if !seen[a] && registered(a) {
			t.Errorf("presets.json has no %s preset", a)
		}
	}
}

func registered(typ string) bool {
	_, ok := arch.LayerTypeOf(typ)
	return ok
}
