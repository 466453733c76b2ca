package lowrank

import (
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/stages"
)

func decode(raw map[string]any) (*Config, config.Errors) {
	typ, _ := stages.Default.Get("lowrank")
	cfg := typ.New().(*Config)
	return cfg, config.Decode(raw, cfg)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  map[string]any
		want string // "" for valid; else "path: part of the message"
	}{
		{"rank", map[string]any{"rank": 64}, ""},
		{"energy one", map[string]any{"energy": 1}, ""},
		{"per layer", map[string]any{"ranks": map[string]any{"fc1": 64}, "energies": map[string]any{"fc2": 0.9}}, ""},
		{"layers with per-layer override", map[string]any{"rank": 8, "layers": []any{"fc1", "fc2"}, "ranks": map[string]any{"fc2": 4}}, ""},
		{"nothing", map[string]any{}, "rank: missing"},
		{"both", map[string]any{"rank": 4, "energy": 0.9}, "energy: set rank or energy, not both"},
		{"rank zero", map[string]any{"rank": 0}, "rank: 0 is below the minimum 1"},
		{"energy zero", map[string]any{"energy": 0}, "energy: 0 must be greater than 0"},
		{"energy above one", map[string]any{"energy": 1.5}, "energy: 1.5 is above the maximum 1"},
		{"rank not an integer", map[string]any{"rank": 6.5}, "rank: must be an integer"},
		{"per-layer rank zero", map[string]any{"ranks": map[string]any{"fc1": 0}}, "ranks.fc1: 0 is below the minimum 1"},
		{"per-layer energy out of range", map[string]any{"energies": map[string]any{"fc1": 2}}, "energies.fc1: 2 is not in (0, 1]"},
		{"both for one layer", map[string]any{"ranks": map[string]any{"fc1": 3}, "energies": map[string]any{"fc1": 0.5}}, "energies.fc1: fc1 also has a rank"},
		{"override outside layers", map[string]any{"rank": 8, "layers": []any{"fc1"}, "ranks": map[string]any{"fc3": 2}}, "ranks.fc3: fc3 is not in layers"},
		{"listed layer without rule", map[string]any{"layers": []any{"fc1", "fc2"}, "ranks": map[string]any{"fc1": 2}}, "layers.1: fc2 has no rank"},
		{"layer twice", map[string]any{"rank": 2, "layers": []any{"fc1", "fc1"}}, "layers.1: layer \"fc1\" is listed twice"},
		{"typo", map[string]any{"rnak": 2}, "rnak: unknown key"},
		{"finetune typo", map[string]any{"rank": 2, "finetune": map[string]any{"epoch": 1}}, "finetune.epoch: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := decode(tc.raw)
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("want valid, got %v", errs)
				}
				return
			}
			if !strings.Contains(errs.Error(), tc.want) {
				t.Errorf("errors %q, want one containing %q", errs.Error(), tc.want)
			}
		})
	}
}

// TestFinetuneKeepsOptimizerDefaults: setting only epochs must not leave the
// optimizer empty.
func TestFinetuneKeepsOptimizerDefaults(t *testing.T) {
	cfg, errs := decode(map[string]any{"rank": 8, "finetune": map[string]any{"epochs": 2, "optimizer": map[string]any{"lr": 0.0005}}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	o := cfg.Finetune.Optimizer
	if cfg.Finetune.Epochs != 2 || o.Name != "adam" || o.LR != 0.0005 || o.Beta2 != 0.999 || !cfg.UsesData() {
		t.Errorf("finetune %+v", cfg.Finetune)
	}
	plain, _ := decode(map[string]any{"rank": 8})
	if plain.UsesData() {
		t.Error("without finetune epochs the stage should not need data")
	}
}

// TestPlan checks which layers a config factors, with which rule.
func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  map[string]any
		want string // "layer:rule ..." or "error: ..."
	}{
		{"rank: every layer", map[string]any{"rank": 2}, "fc1:rank 2 fc2:rank 2 fc3:rank 2"},
		{"layers", map[string]any{"energy": 0.9, "layers": []any{"fc3", "fc1"}}, "fc1:energy 0.9 fc3:energy 0.9"},
		{"maps only", map[string]any{"ranks": map[string]any{"fc2": 3}, "energies": map[string]any{"fc1": 0.5}}, "fc1:energy 0.5 fc2:rank 3"},
		{"override", map[string]any{"rank": 4, "ranks": map[string]any{"fc2": 1}}, "fc1:rank 4 fc2:rank 1 fc3:rank 4"},
		{"unknown layer", map[string]any{"rank": 2, "layers": []any{"fc9"}}, `error: layers: layer "fc9" is not in the model (its layers: fc1, fc2, fc3)`},
		{"unknown map layer", map[string]any{"energies": map[string]any{"conv1": 0.5}}, `error: energies: layer "conv1" is not in the model`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, errs := decode(tc.raw)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			layers, rules, err := cfg.plan(testkit.OracleModel(t))
			var got []string
			if err != nil {
				got = []string{"error: " + err.Error()}
			}
			for i, l := range layers {
				got = append(got, l.Name+":"+rules[i].String())
			}
			if s := strings.Join(got, " "); !strings.HasPrefix(s, tc.want) {
				t.Errorf("plan %q, want %q", s, tc.want)
			}
		})
	}
}
