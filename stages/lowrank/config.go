package lowrank

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
)

// Config is the lowrank stage's keys.
type Config struct {
	Rank     int               `json:"rank,omitempty" minimum:"1" doc:"singular values to keep in every listed layer (exactly one of rank and energy); a layer where rank x (out + in) >= out x in stays dense"`
	Energy   float64           `json:"energy,omitempty" exclusiveMinimum:"0" maximum:"1" doc:"keep, in every listed layer, the smallest rank whose singular values hold at least this share of the squared Frobenius norm (exactly one of rank and energy)"`
	Layers   stages.LayerNames `json:"layers,omitempty" doc:"layers to factor (default: every layer when rank or energy is set, else the layers ranks and energies name); a conv's weight [out, in, kh, kw] is factored as [out, in*kh*kw]"`
	Ranks    Ranks             `json:"ranks,omitempty" doc:"per-layer rank, overriding rank and energy for that layer: {fc1: 64}"`
	Energies Energies          `json:"energies,omitempty" doc:"per-layer energy in (0, 1], overriding rank and energy for that layer: {fc2: 0.9}"`
	Finetune stages.Finetune   `json:"finetune" doc:"training after the factorization: {epochs, optimizer, batch_size}; epochs 0 (the default) skips it"`
}

// Ranks maps layer names to ranks.
type Ranks map[string]int

// ConfigSchema gives the map's values their bound.
func (Ranks) ConfigSchema() map[string]any {
	return map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "integer", "minimum": 1}}
}

// Energies maps layer names to energy shares.
type Energies map[string]float64

// ConfigSchema gives the map's values their bounds.
func (Energies) ConfigSchema() map[string]any {
	return map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "number", "exclusiveMinimum": 0, "maximum": 1}}
}

var (
	_ config.Validator      = (*Config)(nil)
	_ pipeline.ModelChecker = (*Config)(nil)
	_ config.Schemer        = Ranks(nil)
	_ config.Schemer        = Energies(nil)
)

// Validate checks the rules across keys: one rule per layer, and per-layer
// entries that agree with layers.
func (c *Config) Validate() error {
	errs := config.AsErrors(c.Layers.Validate()).Prefix("layers")
	if c.Rank > 0 && c.Energy > 0 {
		errs = append(errs, config.Errorf("energy", "set rank or energy, not both: rank keeps a number of singular values, energy a share of the squared Frobenius norm"))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Ranks)) {
		if k := c.Ranks[name]; k < 1 {
			errs = append(errs, config.Errorf("ranks."+name, "%d is below the minimum 1", k))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Energies)) {
		if e := c.Energies[name]; !(e > 0 && e <= 1) {
			errs = append(errs, config.Errorf("energies."+name, "%s is not in (0, 1]", config.FormatNumber(e)))
		}
		if _, dup := c.Ranks[name]; dup {
			errs = append(errs, config.Errorf("energies."+name, "%s also has a rank in ranks: give each layer one of the two", name))
		}
	}
	global := c.Rank > 0 || c.Energy > 0
	if !global && len(c.Ranks)+len(c.Energies) == 0 {
		errs = append(errs, config.Errorf("rank", "missing: set rank (singular values to keep) or energy (share of the squared Frobenius norm to keep, in (0, 1]), or per layer with ranks or energies"))
	}
	if len(c.Layers) > 0 && !slices.ContainsFunc(c.Layers, arch.IsPattern) {
		for _, p := range []struct {
			key   string
			names []string
		}{{"ranks", slices.Sorted(maps.Keys(c.Ranks))}, {"energies", slices.Sorted(maps.Keys(c.Energies))}} {
			for _, name := range p.names {
				if !arch.IsPattern(name) && !slices.Contains(c.Layers, name) {
					errs = append(errs, config.Errorf(p.key+"."+name, "%s is not in layers: add it there or remove it here", name))
				}
			}
		}
		if !global {
			for i, name := range c.Layers {
				if _, ok, _ := c.rule(name); !ok {
					errs = append(errs, config.Errorf("layers."+strconv.Itoa(i), "%s has no rank: set rank or energy, or ranks.%s or energies.%s", name, name, name))
				}
			}
		}
	}
	return errs.Err()
}

// UsesData reports whether the stage fine-tunes.
func (c *Config) UsesData() bool { return c.Finetune.Epochs > 0 }

// rule is how one layer is factored: a fixed rank, or an energy share.
type rule struct {
	rank   int
	energy float64
}

func (r rule) String() string {
	if r.rank > 0 {
		return "rank " + strconv.Itoa(r.rank)
	}
	return "energy " + config.FormatNumber(r.energy)
}

// rule finds a layer's rule: its own entry first (by name, or the pattern
// matching it), then the stage-wide one.
func (c *Config) rule(name string) (rule, bool, error) {
	k, rankKey, err := stages.Lookup(c.Ranks, name)
	if err != nil {
		return rule{}, false, fmt.Errorf("ranks: %w", err)
	}
	e, energyKey, err := stages.Lookup(c.Energies, name)
	okRank, okEnergy := rankKey != "", energyKey != ""
	switch {
	case err != nil:
		return rule{}, false, fmt.Errorf("energies: %w", err)
	case okRank && okEnergy:
		return rule{}, false, fmt.Errorf("layer %s has both a rank (ranks) and an energy (energies): give it one", name)
	case okRank:
		return rule{rank: k}, true, nil
	case okEnergy:
		return rule{energy: e}, true, nil
	case c.Rank > 0 || c.Energy > 0:
		return rule{rank: c.Rank, energy: c.Energy}, true, nil
	}
	return rule{}, false, nil
}

// plan lists the layers to factor, in the model's order, each with its rule.
// Selectors the model does not match are errors naming the key.
func (c *Config) plan(m *model.Model) ([]*model.Layer, []rule, error) {
	resolve := func(key string, sels []string) ([]string, error) {
		names, err := stages.Factorable.Resolve(m.Graph, sels)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		return names, nil
	}
	ranks, err := resolve("ranks", slices.Sorted(maps.Keys(c.Ranks)))
	if err != nil {
		return nil, nil, err
	}
	energies, err := resolve("energies", slices.Sorted(maps.Keys(c.Energies)))
	if err != nil {
		return nil, nil, err
	}
	var want []string
	switch {
	case len(c.Layers) > 0:
		if want, err = resolve("layers", c.Layers); err != nil {
			return nil, nil, err
		}
	case c.Rank > 0 || c.Energy > 0:
		want = stages.Factorable.Candidates(m.Graph)
	default:
		hit := map[string]bool{}
		for _, n := range append(ranks, energies...) {
			hit[n] = true
		}
		for _, n := range stages.Factorable.Candidates(m.Graph) {
			if hit[n] {
				want = append(want, n)
			}
		}
	}
	var layers []*model.Layer
	var rules []rule
	for _, name := range want {
		r, ok, err := c.rule(name)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return nil, nil, fmt.Errorf("layer %s has no rank: set rank or energy, or ranks.%s", name, name)
		}
		layers = append(layers, m.Layer(name))
		rules = append(rules, r)
	}
	return layers, rules, nil
}

// CheckModel checks the layers the keys name against the model the stage receives.
func (c *Config) CheckModel(in arch.Spec) error {
	errs := stages.CheckLayers(in, "layers", c.Layers, stages.Factorable)
	errs = append(errs, stages.CheckLayerKeys(in, "ranks", c.Ranks, stages.Factorable)...)
	return append(errs, stages.CheckLayerKeys(in, "energies", c.Energies, stages.Factorable)...).Err()
}
