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
	metrics := map[string]any{"method": c.Method}
	if c.Target == nil {
		metrics["amount"] = c.Amount.String()
	}
	if len(c.Amounts) > 0 {
		per := map[string]string{}
		for l, a := range c.Amounts {
			per[l] = a.String()
		}
		metrics["amounts"] = per
	}
	before := sizes(m)
	if c.groupwise() {
		if err := c.runGroups(ctx, m, metrics); err != nil {
			return nil, err
		}
	} else {
		layers, err := m.Select(c.Layers)
		if err != nil {
			return nil, fmt.Errorf("layers: %w", err)
		}
		pruned, err := c.prune(tensorsOf(layers), ctx.Rand)
		if err != nil {
			return nil, err
		}
		metrics["pruned"] = pruned
	}
	sizes(m).addTo(metrics, before)
	s := measureSparsity(m)
	s.log(ctx.Log.Info(), "pruned")
	if c.Finetune.Epochs > 0 {
		if err := ctx.Train("finetune", m, c.Finetune, model.Loss{}, nil); err != nil {
			return nil, fmt.Errorf("finetune: %w", err)
		}
		s = measureSparsity(m) // masks keep the zeros; a quantized layer may round more to zero
	}
	s.addTo(metrics)
	return &stages.Result{Model: m, Metrics: metrics}, nil
}

// prune computes and applies the method's masks; it returns the entries (or,
// for ln_structured, the channels) pruned per weight tensor. Per-layer methods
// take each layer's amount from amounts, else amount.
func (c *Config) prune(ts []tensor, rng *rand.Rand) (map[string]int, error) {
	if c.Method == GlobalUnstructured {
		return globalUnstructured(ts, c.Amount)
	}
	out := map[string]int{}
	for start := 0; start < len(ts); {
		end := start + 1
		for end < len(ts) && ts[end].layer == ts[start].layer {
			end++ // a factored layer's two weights share its amount
		}
		layer := ts[start].layer.Name
		amount, sel, err := stages.Lookup(c.Amounts, layer)
		if err != nil {
			return nil, fmt.Errorf("amounts: %w", err)
		}
		if sel == "" {
			amount = c.Amount
		}
		if !amount.IsSet() {
			return nil, fmt.Errorf("layer %s has no amount: add it to amounts, or set amount for the other layers", layer)
		}
		var pruned map[string]int
		switch c.Method {
		case RandomUnstructured:
			pruned, err = randomUnstructured(ts[start:end], amount, rng)
		case L1Unstructured:
			pruned, err = l1Unstructured(ts[start:end], amount)
		case LnStructured:
			pruned, err = lnStructured(ts[start:end], amount, c.N, c.Dim)
		default:
			return nil, fmt.Errorf("method %q cannot prune in one step", c.Method)
		}
		if err != nil {
			return nil, err
		}
		for k, v := range pruned {
			out[k] = v
		}
		start = end
	}
	return out, nil
}

// widths are the units of every layer.
func widths(m *model.Model) map[string]int {
	out := map[string]int{}
	for _, l := range m.WeightLayers() {
		out[l.Name] = l.Units()
	}
	return out
}
