// Package lora is the lora stage: it freezes its input model, adds LoRA
// adapters to the target layers with PEFT's semantics (optionally over an
// NF4, int8 or int4 base: QLoRA), trains the adapters and the layers named in
// train_also, and writes PEFT's adapter files beside its checkpoint
// (adapter_model.safetensors, adapter_config.json). With merge it folds the
// adapters into the weights and outputs a plain model. See docs/LORA.md.
package lora

import (
	"fmt"
	"math"
	"math/bits"
	"os"
	"slices"
	"strconv"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/quant"
	"github.com/shrink-ml/shrink/stages"
)

func init() {
	stages.Register(stages.Type{
		Name:    "lora",
		Summary: "adapt a frozen (optionally NF4, int8 or int4) model with low-rank adapters, PEFT-compatible (LoRA, QLoRA)",
		New: func() stages.Config {
			return &Config{R: 8, Alpha: 8, Base: "float", Blocksize: 64, DoubleQuant: true, BatchNorm: "frozen", Training: stages.DefaultTraining(1)}
		},
	})
}

// Config is the lora stage's keys, and the train stage's (epochs, optimizer,
// batch_size).
type Config struct {
	Targets     stages.LayerNames `json:"targets" minItems:"1" doc:"the layers to adapt (names, globs, re: patterns): linear and ungrouped, undilated conv2d layers; PEFT's target_modules"`
	R           int               `json:"r" minimum:"1" doc:"the adapters' rank"`
	Alpha       float64           `json:"alpha" exclusiveMinimum:"0" doc:"lora_alpha: the adapter's output is scaled by alpha / r (alpha / sqrt(r) with rslora)"`
	RSLoRA      bool              `json:"rslora" doc:"rank-stabilized LoRA: scale by alpha / sqrt(r)"`
	Dropout     float64           `json:"dropout" minimum:"0" exclusiveMaximum:"1" doc:"lora_dropout: dropout on the adapter branch's input while training (the base sees the input unchanged)"`
	TrainAlso   stages.LayerNames `json:"train_also,omitempty" doc:"layers trained in full (PEFT's modules_to_save), e.g. a new classifier head; their tensors go into adapter_model.safetensors"`
	Base        string            `json:"base" enum:"float,nf4,int8,int4" doc:"the frozen base's weights (linear and conv2d layers not in train_also): float as they are; nf4 quantized as bitsandbytes does for QLoRA (docs/NF4.md); int8 or int4 per-channel symmetric"`
	Blocksize   int               `json:"blocksize" minimum:"32" maximum:"4096" doc:"nf4: consecutive weights sharing one absmax (a power of two)"`
	DoubleQuant bool              `json:"double_quant" doc:"nf4: quantize the absmax values too (QLoRA's double quantization)"`
	BatchNorm   string            `json:"batchnorm" enum:"frozen,update" doc:"batch norm layers not in train_also: frozen normalizes with their running statistics and keeps them; update normalizes with each batch's and updates them, as a PEFT model's base does under model.train() (they are then saved as modules_to_save too)"`
	Merge       bool              `json:"merge" doc:"fold the adapters into the weights (W + B A * scaling, an NF4 or integer base dequantized) and output a plain float model that later stages continue from; the adapter files are written all the same"`
	stages.Training
}

var (
	_ config.Validator      = (*Config)(nil)
	_ pipeline.ModelChecker = (*Config)(nil)
)

// Validate checks the rules across keys.
func (c *Config) Validate() error {
	errs := config.AsErrors(c.Targets.Validate()).Prefix("targets")
	errs = append(errs, config.AsErrors(c.TrainAlso.Validate()).Prefix("train_also")...)
	for i, n := range c.TrainAlso {
		if slices.Contains(c.Targets, n) {
			errs = append(errs, config.Errorf("train_also."+strconv.Itoa(i), "%s is also a target: a layer either gets an adapter or trains in full", n))
		}
	}
	// The adapter's output is scaled in float32: a scale that rounds to 0
	// trains nothing, and an infinite one makes every output NaN.
	scaling, div := c.Alpha/float64(c.R), "r"
	if c.RSLoRA {
		scaling, div = c.Alpha/math.Sqrt(float64(c.R)), "sqrt(r)"
	}
	if f := float32(scaling); f == 0 || math.IsInf(float64(f), 0) {
		errs = append(errs, config.Errorf("alpha", "the adapters' scaling alpha / %s = %.3g is %v in float32: keep it from about 1e-38 to 3e38 (PEFT's defaults, alpha 8 and r 8, give 1)", div, scaling, f))
	}
	if bits.OnesCount(uint(c.Blocksize)) != 1 {
		errs = append(errs, config.Errorf("blocksize", "%d is not a power of two (bitsandbytes takes 32, 64, ..., 4096)", c.Blocksize))
	}
	return errs.Err()
}

// Adaptable is the layers an adapter attaches to.
var Adaptable = stages.Layers{What: "linear and conv2d layers (ungrouped, undilated)", OK: func(n *arch.Node) bool {
	if c, ok := n.Config.(*nn.Conv2d); ok && c.Dilation != nn.Square(1) {
		return false
	}
	return n.Caps().Adapter
}}

// CheckModel checks the layer selectors against the model the stage receives.
func (c *Config) CheckModel(in arch.Spec) error {
	errs := stages.CheckLayers(in, "targets", c.Targets, Adaptable)
	errs = append(errs, stages.CheckLayers(in, "train_also", c.TrainAlso, stages.AnyLearnable)...)
	if len(errs) == 0 {
		errs = c.checkSizes(in)
	}
	return errs.Err()
}

// checkSizes refuses, before anything runs, an r whose adapters could not be
// allocated (model.CheckAdapterSize).
func (c *Config) checkSizes(in arch.Spec) config.Errors {
	g, err := in.Graph()
	if err != nil {
		return nil // the model section reports it
	}
	names, err := Adaptable.Resolve(g, c.Targets)
	if err != nil {
		return nil // CheckLayers reported it
	}
	for _, name := range names {
		n := g.Node(name)
		f, ok := n.Config.(arch.Factorable)
		if !ok {
			continue
		}
		a, b := f.FactorShapes(n.In, c.R)
		if err := model.CheckAdapterSize(name, c.R, a, b); err != nil {
			return config.Errors{config.Errorf("r", "%v", err)}
		}
	}
	return nil
}

// UsesData reports that the stage trains and measures accuracy before.
func (c *Config) UsesData() bool { return true }

// Run freezes the input model, quantizes its base, adds and trains the
// adapters, writes the PEFT files and, with merge, folds the adapters in.
func (c *Config) Run(ctx *stages.Context) (*stages.Result, error) {
	m, err := ctx.Start()
	if err != nil {
		return nil, err
	}
	if m.HasAdapters() {
		return nil, fmt.Errorf("the input model already carries LoRA adapters: merge them (merge: true) before adapting it again")
	}
	ds, err := ctx.Dataset()
	if err != nil {
		return nil, err
	}
	evalBatch := ctx.DataConfig.EvalBatchSize
	metrics := map[string]any{}
	before, err := model.Evaluate(ctx, m, ds.Test, evalBatch)
	if err != nil {
		return nil, err
	}
	metrics["accuracy_before"] = before.Accuracy

	targets, err := Adaptable.Resolve(m.Graph, c.Targets)
	if err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	trainAlso, err := stages.AnyLearnable.Resolve(m.Graph, c.TrainAlso)
	if err != nil {
		return nil, fmt.Errorf("train_also: %w", err)
	}
	saved := slices.Clone(trainAlso) // modules_to_save: train_also, and the norms that update
	quantized, err := c.freeze(m, trainAlso, &saved)
	if err != nil {
		return nil, err
	}
	if c.Base != "float" {
		q, err := model.Evaluate(ctx, m, ds.Test, evalBatch)
		if err != nil {
			return nil, err
		}
		metrics["accuracy_quantized_base"] = q.Accuracy
	}
	for _, name := range targets {
		if err := m.Layer(name).AddAdapter(c.R, c.Alpha, c.RSLoRA, c.Dropout, ctx.Rand); err != nil {
			return nil, fmt.Errorf("targets: %w", err)
		}
	}
	for k, v := range stages.TrainableMetrics(m, c.Training) {
		metrics[k] = v
	}
	base, baseF32 := baseBytes(m)
	metrics["base_bytes"], metrics["base_f32_bytes"] = base, baseF32
	metrics["base_ratio"] = stages.Round6(float64(baseF32) / float64(max(base, 1)))
	metrics["epochs"] = c.Epochs

	if err := ctx.Train("lora", m, c.Training, model.Loss{}, nil); err != nil {
		return nil, err
	}
	after, err := model.Evaluate(ctx, m, ds.Test, evalBatch)
	if err != nil {
		return nil, err
	}
	metrics["accuracy_after"] = after.Accuracy
	n, err := writeAdapter(ctx.Dir, m, c, targets, saved)
	if err != nil {
		return nil, err
	}
	metrics["adapter_file_bytes"] = n
	if c.Merge {
		m.MergeAdapters()
		for _, l := range quantized {
			l.Quant = nil // a plain model: the base this stage quantized goes back to floats
			for _, w := range l.Weights {
				w.QParams = nil
			}
		}
		ctx.Log.Info().Strs("layers", targets).Msg("adapters merged into the weights")
	}
	return &stages.Result{Model: m, Metrics: metrics}, nil
}

// freeze freezes every layer with tensors that train_also does not name and
// quantizes the frozen linear and conv2d weights to the base's format. It
// returns the layers it quantized to integers, and adds the batch norms that
// update their statistics to saved.
func (c *Config) freeze(m *model.Model, trainAlso []string, saved *[]string) ([]*model.Layer, error) {
	var quantized []*model.Layer
	for _, l := range m.Layers {
		if len(l.Tensors()) == 0 || slices.Contains(trainAlso, l.Name) {
			continue
		}
		l.Frozen = model.FrozenParams
		if len(l.Buffers) > 0 { // running statistics: a norm layer
			if c.BatchNorm == "frozen" {
				l.Frozen = model.FrozenAll
			} else {
				*saved = append(*saved, l.Name)
			}
		}
		if c.Base == "float" || !l.Compressible() || !l.Caps().Static {
			continue
		}
		if l.Quant != nil {
			return nil, fmt.Errorf("base: layer %s is already quantized (%s): keep it with base: float", l.Name, l.Quant)
		}
		var err error
		switch c.Base {
		case "nf4":
			err = l.QuantizeNF4(c.Blocksize, c.DoubleQuant)
		case "int8", "int4":
			b := 8
			if c.Base == "int4" {
				b = 4
			}
			err = l.QuantizeFrozen(quant.Spec{Bits: b, Scheme: quant.Symmetric, Granularity: quant.PerChannel})
			quantized = append(quantized, l)
		}
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", c.Base, err)
		}
	}
	return quantized, nil
}

// baseBytes is the frozen base's size as stored: NF4 weights at their packed
// size with their block scales, maps and quant state (bitsandbytes' tensors),
// integer weights at their bits with their scales, float tensors at 4 bytes a
// value; and what it would take in float32.
func baseBytes(m *model.Model) (stored, f32 int64) {
	for _, l := range m.Layers {
		if l.Frozen == model.Trainable {
			continue
		}
		for _, w := range l.Weights {
			f32 += 4 * int64(len(w.Data))
			switch {
			case w.NF4 != nil:
				stored += int64(w.NF4.Bytes())
			case l.Quant != nil:
				ch := int64(l.Quant.Channels(w.Shape))
				stored += (int64(len(w.Data))*int64(l.Quant.Bits)+7)/8 + 4*ch
			default:
				stored += 4 * int64(len(w.Data))
			}
		}
		for _, w := range slices.Concat(l.Params, l.Buffers) {
			stored += 4 * int64(len(w.Data))
			f32 += 4 * int64(len(w.Data))
		}
	}
	return stored, f32
}

// fileSize is a file's size, 0 when it cannot be read.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
