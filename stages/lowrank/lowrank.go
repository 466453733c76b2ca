// Package lowrank is the lowrank stage: it factors weight matrices by truncated
// SVD, W (out x in) ~= NAME.1.weight (out x k) x NAME.0.weight (k x in), keeping
// the bias as NAME.1.bias, then optionally fine-tunes the factored model. A conv
// becomes a k-channel conv followed by a 1x1 conv. See docs/LOWRANK.md.
package lowrank

import (
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

func init() {
	stages.Register(stages.Type{
		Name:    "lowrank",
		Summary: "factor weight matrices by truncated SVD (rank or energy), keeping the bias; optional fine-tuning",
		New:     func() stages.Config { return &Config{Finetune: stages.DefaultTraining(0)} },
	})
}

// Run factors the listed layers of the input model, then fine-tunes.
func (c *Config) Run(ctx *stages.Context) (*stages.Result, error) {
	m, err := ctx.Start()
	if err != nil {
		return nil, err
	}
	layers, rules, err := c.plan(m)
	if err != nil {
		return nil, err
	}
	macsBefore := multiplyAdds(m)
	reports := map[string]LayerReport{}
	factored := 0
	for i, l := range layers {
		rep, err := factorLayer(l, rules[i], ctx.Log)
		if err != nil {
			return nil, err
		}
		if rep.Result == Factored || rep.Result == Refactored {
			factored++
		}
		reports[l.Name] = rep.rounded()
	}
	if err := ctx.Train("finetune", m, c.Finetune, model.Loss{}, nil); err != nil {
		return nil, err
	}
	return &stages.Result{Model: m, Metrics: map[string]any{
		"lowrank":              reports,
		"factored_layers":      factored,
		"multiply_adds_before": macsBefore,
		"multiply_adds":        multiplyAdds(m),
		"finetune_epochs":      c.Finetune.Epochs,
	}}, nil
}
