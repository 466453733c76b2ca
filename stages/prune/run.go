package prune

import (
	"fmt"
	"math/rand/v2"

	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// Run prunes the start model, makes the pruning physical if asked, and fine-tunes.
func (c *Config) Run(ctx *stages.Context) (*stages.Result, error) {
	if c.Method == LotteryTicket {
		return c.runLottery(ctx)
	}
	m, err := ctx.Start()
	if err != nil {
		return nil, err
	}
	layers, err := c.layers(m)
	if err != nil {
		return nil, err
	}
	pruned, err := c.prune(tensorsOf(layers), ctx.Rand)
	if err != nil {
		return nil, err
	}
	metrics := map[string]any{"method": c.Method, "amount": c.Amount.String(), "pruned": pruned}
	if c.Physical {
		removed, err := removeDeadUnits(m, layers)
		if err != nil {
			return nil, err
		}
		metrics["removed_units"] = removed
		metrics["widths"] = widths(m)
		ctx.Log.Info().Interface("removed_units", removed).Interface("widths", widths(m)).Msg("units removed")
	}
	measureSparsity(m).log(ctx.Log.Info(), "pruned")
	if err := ctx.Train("finetune", m, c.Finetune, model.Loss{}, nil); err != nil {
		return nil, fmt.Errorf("finetune: %w", err)
	}
	s := measureSparsity(m)
	s.addTo(metrics)
	return &stages.Result{Model: m, Metrics: metrics}, nil
}

// layers resolves the layers key: the listed layers, else every weight layer
// (every hidden layer when physical, since the output layer's units are the
// classes).
func (c *Config) layers(m *model.Model) ([]*model.Layer, error) {
	if len(c.Layers) == 0 && c.Physical {
		return m.Layers[:len(m.Layers)-1], nil
	}
	layers, err := m.Select(c.Layers)
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	return layers, nil
}

// prune computes and applies the method's masks; it returns the entries (or,
// for ln_structured, the channels) pruned per weight tensor.
func (c *Config) prune(ts []tensor, rng *rand.Rand) (map[string]int, error) {
	switch c.Method {
	case RandomUnstructured:
		return randomUnstructured(ts, c.Amount, rng)
	case L1Unstructured:
		return l1Unstructured(ts, c.Amount)
	case GlobalUnstructured:
		return globalUnstructured(ts, c.Amount)
	case LnStructured:
		return lnStructured(ts, c.Amount, c.N, c.Dim)
	}
	return nil, fmt.Errorf("method %q cannot prune in one step", c.Method)
}

// widths are the units of every layer.
func widths(m *model.Model) map[string]int {
	out := map[string]int{}
	for _, l := range m.Layers {
		out[l.Name] = l.Out
	}
	return out
}
