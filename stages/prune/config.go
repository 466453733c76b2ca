package prune

import (
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
)

// The methods, as torch.nn.utils.prune names them, and the lottery ticket.
const (
	RandomUnstructured = "random_unstructured"
	L1Unstructured     = "l1_unstructured"
	GlobalUnstructured = "global_unstructured"
	LnStructured       = "ln_structured"
	GroupNorm          = "group_norm"
	LotteryTicket      = "lottery_ticket"
)

var (
	_ stages.Config         = (*Config)(nil)
	_ pipeline.DataUser     = (*Config)(nil)
	_ pipeline.DataChecker  = (*Config)(nil)
	_ pipeline.ModelChecker = (*Config)(nil)
	_ config.Decoder        = (*Amount)(nil)
	_ config.Schemer        = (*Amount)(nil)
	_ config.Decoder        = (*Norm)(nil)
	_ config.Schemer        = (*Norm)(nil)
	_ config.Decoder        = (*Rewind)(nil)
	_ config.Schemer        = (*Rewind)(nil)
)

var methods = []string{RandomUnstructured, L1Unstructured, GlobalUnstructured, LnStructured, GroupNorm, LotteryTicket}

func init() {
	stages.Register(stages.Type{
		Name:    "prune",
		Summary: "prune weights (random, L1, global L1), whole channels with their dependency groups (Ln-structured, group norm; global MACs or params targets; physical removal) or find a lottery ticket; masks stay through later stages",
		New:     func() stages.Config { return New() },
	})
}

// Config is the prune stage's keys. Keys that belong to one method are errors
// with another (unless they hold their default), so a misplaced key never goes
// silently unused.
type Config struct {
	Method   string            `json:"method" enum:"random_unstructured,l1_unstructured,global_unstructured,ln_structured,group_norm,lottery_ticket" doc:"how to choose what to prune: random_unstructured, l1_unstructured (smallest |w| per layer), global_unstructured (smallest |w| over all listed layers together), ln_structured (whole rows/channels with the smallest Ln norm of the layer's weight), group_norm (whole channels with the smallest summed Ln norm over every tensor slice coupled with them: the next layers' inputs, batch norms, residual partners), lottery_ticket (iterative magnitude pruning with rewinding)"`
	Amount   Amount            `json:"amount,omitempty" doc:"how much to prune, as torch.nn.utils.prune: an integer is a count (amount: 100), a number with a decimal point a fraction in [0, 1] of the weights (ln_structured, group_norm: channels) still unpruned, rounded half to even (amount: 0.5; 1.0 prunes all); per layer (group_norm and physical ln_structured: per channel group), except global_unstructured: over all listed layers together"`
	Amounts  map[string]Amount `json:"amounts,omitempty" doc:"per-layer amounts, e.g. {fc1: 0.9, fc3: 0.5}: each listed layer is pruned by its own amount instead of amount (random_unstructured, l1_unstructured, ln_structured, group_norm); layers it does not list take amount"`
	Target   *Target           `json:"target,omitempty" doc:"ln_structured and group_norm: instead of an amount, prune channels across all listed layers together, least important first (scores normalized by their group's mean), until the model keeps this fraction of its multiply-accumulates or parameters: {macs: 0.5} or {params: 0.5}"`
	Layers   stages.LayerNames `json:"layers,omitempty" doc:"the layers to prune (default: every weight layer; with physical, group_norm or target: every layer whose output channels can be removed, the output layer never)"`
	Ignore   stages.LayerNames `json:"ignore,omitempty" doc:"group_norm, and ln_structured with physical or target: layers whose output channels stay whole (with every channel coupled to them: a residual stage is one group)"`
	N        Norm              `json:"n" doc:"ln_structured and group_norm: the norm that scores a channel (torch.norm's p): 1, 2, any p > 0, inf, -inf or fro"`
	Dim      int               `json:"dim" minimum:"0" maximum:"1" doc:"ln_structured: 0 prunes rows of a linear weight (output units) or a conv's output channels; 1 prunes input columns or input channels"`
	Physical bool              `json:"physical" doc:"ln_structured (dim 0) and group_norm: remove the pruned channels from every tensor coupled with them (the layer's rows and bias, batch norms, the next layers' inputs, residual partners), so the model is smaller and faster (the checkpoint's arch records the new widths); never the output layer"`
	Finetune stages.Finetune   `json:"finetune" doc:"training after pruning, masks kept: {epochs, optimizer, batch_size}; epochs 0 skips it"`

	Rounds     int             `json:"rounds" minimum:"1" doc:"lottery_ticket: prune-rewind-retrain rounds after the first (dense) training"`
	Rate       float64         `json:"rate" exclusiveMinimum:"0" exclusiveMaximum:"1" doc:"lottery_ticket: share of each layer's remaining weights pruned per round (smallest |w|)"`
	OutputRate *float64        `json:"output_rate,omitempty" minimum:"0" exclusiveMaximum:"1" doc:"lottery_ticket: the output layer's rate per round (default: half of rate)"`
	Rewind     Rewind          `json:"rewind" doc:"lottery_ticket: reset the survivors each round to their initial values (init: the start model's weights) or to their values after epoch K of the first training ({epoch: K})"`
	Train      stages.Training `json:"train" doc:"lottery_ticket: the training of every round, the first dense one and each retraining: {epochs, optimizer, batch_size}"`
	Select     string          `json:"select" enum:"last,best_val" doc:"lottery_ticket: output the last round, or the pruned round with the best validation accuracy (best_val needs data.validation_split > 0)"`
	Control    string          `json:"control" enum:"none,random_reinit" doc:"lottery_ticket: random_reinit also trains each round's masks from fresh random weights (the paper's control) and reports its accuracy beside the ticket's"`
}

// New returns the defaults.
func New() *Config {
	return &Config{
		N:        2,
		Finetune: stages.DefaultTraining(0),
		Rounds:   5,
		Rate:     0.2,
		Train:    stages.DefaultTraining(5),
		Select:   "last",
		Control:  "none",
	}
}

// UsesData reports whether the settings train: a finetune, or the lottery ticket.
func (c *Config) UsesData() bool {
	return c.Method == LotteryTicket || c.Finetune.Epochs > 0
}

// Warnings flags an integer amount from 1 to 100: torch reads amount: 80 as
// 80 weights (or channels), while 80% (0.8) was most likely meant.
func (c *Config) Warnings() config.Errors {
	unit := "weights"
	if c.Method == LnStructured {
		unit = "channels"
	}
	var ws config.Errors
	check := func(path string, a Amount) {
		if a.IsCount() && a.count >= 1 && a.count <= 100 {
			ws = append(ws, config.Errorf(path, "%d is an integer, so it prunes %d %s (torch's rule: an integer is a count); for %d%%, write %s",
				a.count, a.count, unit, a.count, Fraction(float64(a.count)/100)))
		}
	}
	check("amount", c.Amount)
	for _, k := range slices.Sorted(maps.Keys(c.Amounts)) {
		check("amounts."+k, c.Amounts[k])
	}
	return ws
}

// Validate checks the rules across keys.
func (c *Config) Validate() error {
	if c.Method == "" {
		return config.Errorf("method", "missing: choose %s", strings.Join(methods, ", "))
	}
	errs := config.AsErrors(c.Layers.Validate()).Prefix("layers")
	def := New()
	onlyFor := func(key, method string, set bool) {
		if set {
			errs = append(errs, config.Errorf(key, "applies only to method %s, not %s", method, c.Method))
		}
	}
	if len(c.Amounts) > 0 && (c.Method == GlobalUnstructured || c.Method == LotteryTicket) {
		errs = append(errs, config.Errorf("amounts", "%s prunes all layers by one rule: per-layer amounts apply to random_unstructured, l1_unstructured and ln_structured", c.Method))
	}
	patterns := slices.ContainsFunc(c.Layers, arch.IsPattern) || slices.ContainsFunc(slices.Collect(maps.Keys(c.Amounts)), arch.IsPattern)
	for _, name := range slices.Sorted(maps.Keys(c.Amounts)) {
		if len(c.Layers) > 0 && !patterns && !slices.Contains(c.Layers, name) {
			errs = append(errs, config.Errorf("amounts."+name, "layer %s is not in layers %v", name, []string(c.Layers)))
		}
	}
	if c.Method != LotteryTicket && c.Method != GlobalUnstructured && len(c.Amounts) > 0 && !c.Amount.IsSet() && len(c.Layers) > 0 && !patterns {
		for _, l := range c.Layers {
			if _, ok := c.Amounts[l]; !ok {
				errs = append(errs, config.Errorf("amounts", "layer %s has no amount: add it here, or set amount for the layers not listed", l))
			}
		}
	}
	errs = append(errs, config.AsErrors(c.Ignore.Validate()).Prefix("ignore")...)
	switch {
	case c.Target != nil && c.Method != LnStructured && c.Method != GroupNorm:
		errs = append(errs, config.Errorf("target", "applies to ln_structured and group_norm, which prune whole channels; %s prunes weights", c.Method))
	case c.Target != nil && (c.Amount.IsSet() || len(c.Amounts) > 0):
		errs = append(errs, config.Errorf("target", "give either target (how much of the model to keep) or amount (how much of each layer to prune), not both"))
	case c.Target != nil && c.Dim != 0:
		errs = append(errs, config.Errorf("target", "removes whole output channels, so it needs dim: 0"))
	}
	if len(c.Ignore) > 0 && !c.groupwise() {
		errs = append(errs, config.Errorf("ignore", "applies to channel groups: method group_norm, or ln_structured with physical or target"))
	}
	if c.Method == GroupNorm && c.Dim != 0 {
		errs = append(errs, config.Errorf("dim", "group_norm prunes whole channel groups (dim 0 of their layers): leave dim out"))
	}
	if c.Method != LotteryTicket {
		if !c.Amount.IsSet() && len(c.Amounts) == 0 && c.Target == nil {
			errs = append(errs, config.Errorf("amount", "missing: how much to prune, an integer count (amount: 100) or a fraction in [0, 1] (amount: 0.5)"))
		}
		onlyFor("rounds", LotteryTicket, c.Rounds != def.Rounds)
		onlyFor("rate", LotteryTicket, c.Rate != def.Rate)
		onlyFor("output_rate", LotteryTicket, c.OutputRate != nil)
		onlyFor("rewind", LotteryTicket, c.Rewind != def.Rewind)
		onlyFor("train", LotteryTicket, !reflect.DeepEqual(c.Train, def.Train))
		onlyFor("select", LotteryTicket, c.Select != def.Select)
		onlyFor("control", LotteryTicket, c.Control != def.Control)
	}
	if c.Method != LnStructured && c.Method != GroupNorm {
		onlyFor("n", LnStructured+" or "+GroupNorm, c.N != def.N)
		onlyFor("dim", LnStructured, c.Dim != def.Dim)
		onlyFor("physical", LnStructured+" or "+GroupNorm, c.Physical)
	}
	if c.Physical && c.Amount == Fraction(1) && len(c.Amounts) == 0 && (c.Method == LnStructured || c.Method == GroupNorm) {
		// Every channel of every group would go, which the run refuses only
		// after the stages before this one trained.
		errs = append(errs, config.Errorf("amount", "1.0 prunes every channel, and physical removes pruned channels from the model, which cannot lose a layer whole: lower the amount, or drop physical to keep the zeros as masks"))
	}
	if c.Physical && c.Dim != 0 {
		errs = append(errs, config.Errorf("physical", "removes whole units, so it needs dim: 0 (rows of a linear weight, output channels of a conv); dim %d prunes inputs", c.Dim))
	}
	if c.Method == LotteryTicket {
		if c.Amount.IsSet() {
			errs = append(errs, config.Errorf("amount", "lottery_ticket prunes rate of the remaining weights each round: write rate (and rounds) instead of amount"))
		}
		if c.Finetune.Epochs > 0 {
			errs = append(errs, config.Errorf("finetune", "lottery_ticket retrains every round with train: set train.epochs instead of finetune"))
		}
		if c.Train.Epochs < 1 {
			errs = append(errs, config.Errorf("train.epochs", "lottery_ticket trains every round: needs at least 1 epoch"))
		}
		if c.Rewind.Epoch > c.Train.Epochs {
			errs = append(errs, config.Errorf("rewind.epoch", "epoch %d is past the first training's last epoch (train.epochs: %d)", c.Rewind.Epoch, c.Train.Epochs))
		}
	}
	return errs.Err()
}

// CheckData checks what the settings need of the recipe's data section.
func (c *Config) CheckData(d *data.Config) error {
	if c.Method == LotteryTicket && c.Select == "best_val" && d.ValidationSplit == 0 {
		return config.Errorf("select", "best_val picks the round by validation accuracy: set data.validation_split (for example 0.1), or use select: last")
	}
	return nil
}

// outputRate is the lottery ticket's rate for the output layer.
func (c *Config) outputRate() float64 {
	if c.OutputRate != nil {
		return *c.OutputRate
	}
	return c.Rate / 2
}

// CheckModel checks the layers the keys name against the model the stage receives.
func (c *Config) CheckModel(in arch.Spec) error {
	errs := stages.CheckLayers(in, "layers", c.Layers, stages.AnyWeights)
	errs = append(errs, stages.CheckLayers(in, "ignore", c.Ignore, stages.AnyWeights)...)
	errs = append(errs, stages.CheckLayerKeys(in, "amounts", c.Amounts, stages.AnyWeights)...)
	if len(errs) == 0 {
		errs = c.checkCounts(in)
	}
	return errs.Err()
}

// checkCounts catches integer amounts larger than what they count (weights,
// or channels for ln_structured) in the architecture the stage receives, which
// would otherwise fail only after the stages before it trained.
func (c *Config) checkCounts(in arch.Spec) config.Errors {
	g, err := in.Graph()
	if err != nil || c.Method == LotteryTicket {
		return nil
	}
	names, err := stages.AnyWeights.Resolve(g, c.Layers)
	if len(c.Layers) == 0 {
		names, err = stages.AnyWeights.Candidates(g), nil
	}
	if err != nil {
		return nil
	}
	var errs config.Errors
	total := 0
	for _, name := range names {
		amount, key := c.Amount, "amount"
		if a, sel, err := stages.Lookup(c.Amounts, name); err != nil {
			return config.Errors{config.Errorf("amounts", "%v", err)}
		} else if sel != "" {
			amount, key = a, "amounts."+sel
		}
		for _, t := range g.Node(name).Tensors() {
			if t.Role != arch.Weight {
				continue
			}
			size, unit := arch.Shape(t.Shape).Size(), "weights"
			if c.Method == LnStructured || c.Method == GroupNorm {
				size, unit = t.Shape[c.Dim], "channels along dim "+strconv.Itoa(c.Dim)
			}
			total += size
			if c.Method != GlobalUnstructured && amount.IsCount() {
				if _, err := amount.Of(size, unit+" of "+name+"."+t.Suffix); err != nil {
					errs = append(errs, config.Errorf(key, "%v", err))
				}
			}
		}
	}
	if c.Method == GlobalUnstructured && c.Amount.IsCount() {
		if _, err := c.Amount.Of(total, "weights of the layers it prunes together"); err != nil {
			errs = append(errs, config.Errorf("amount", "%v", err))
		}
	}
	return errs
}

// groupwise reports whether the settings prune channel groups (see groups.go)
// rather than each layer's weight on its own, as torch.nn.utils.prune does.
func (c *Config) groupwise() bool {
	return c.Method == GroupNorm || c.Method == LnStructured && (c.Physical || c.Target != nil)
}

// Target is how much of the model global structured pruning keeps: one of
// its multiply-accumulates per sample or its parameters, as a fraction.
type Target struct {
	MACs   float64 `json:"macs,omitempty" exclusiveMinimum:"0" maximum:"1" doc:"keep this fraction of the model's multiply-accumulates per sample (0.5: half)"`
	Params float64 `json:"params,omitempty" exclusiveMinimum:"0" maximum:"1" doc:"keep this fraction of the model's parameters (PyTorch's parameters(): weights, biases, norm affines)"`
}

// Validate requires exactly one measure.
func (t *Target) Validate() error {
	if (t.MACs == 0) == (t.Params == 0) {
		return config.Errorf("", "give exactly one of macs and params, like {macs: 0.5}")
	}
	return nil
}

// measure names the target's measure and fraction.
func (t *Target) measure() (string, float64) {
	if t.MACs > 0 {
		return "macs", t.MACs
	}
	return "params", t.Params
}
