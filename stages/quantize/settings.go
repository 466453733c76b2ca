package quantize

import (
	"fmt"
	"maps"
	"slices"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
	"github.com/shrink-ml/shrink/stages"
)

// Settings are the keys quantize and qat share: how weights and layer inputs are
// quantized, and which layers.
type Settings struct {
	Mode               string              `json:"mode" enum:"dynamic,static" doc:"dynamic: each layer's input is quantized per batch at inference from that batch's range; static: input ranges are calibrated on training data and stored (NAME.input_scale)"`
	Bits               int                 `json:"bits" minimum:"2" maximum:"8" doc:"weight bits: 5 to 8 are stored as I8 NAME.weight, 4 and below packed into I32 NAME.weight_packed"`
	Scheme             quant.Scheme        `json:"scheme" enum:"symmetric,asymmetric" doc:"weights: symmetric (zero point 0, scale max|w|/((qmax-qmin)/2)) or asymmetric (scale (max-min)/(qmax-qmin) with a zero point)"`
	Granularity        quant.Granularity   `json:"granularity" enum:"per_tensor,per_channel" doc:"weights: one scale per tensor, or one per output channel (row of [out, in])"`
	CalibrationBatches int                 `json:"calibration_batches" minimum:"1" doc:"static: training batches (data.batch_size rows each, shuffled from the seed when data.shuffle) whose activations set the input ranges"`
	Observer           string              `json:"observer" enum:"minmax,percentile" doc:"static: an input range is the calibration values' min and max (torch.ao MinMaxObserver), or their percentiles (ignores the rarest outliers)"`
	Percentile         float64             `json:"percentile" exclusiveMinimum:"50" maximum:"100" doc:"observer percentile: the range runs from the (100 - p)-th to the p-th percentile of the calibration values"`
	Activations        Activations         `json:"activations" doc:"how layer inputs are quantized: {bits: 8, scheme: asymmetric} by default, one scale per tensor"`
	Layers             stages.LayerNames   `json:"layers,omitempty" doc:"layers to quantize (default: all)"`
	Overrides          map[string]Override `json:"overrides,omitempty" doc:"per-layer weight settings replacing bits, scheme or granularity for that layer, so one recipe can mix precisions: {fc1: {bits: 4}, fc3: {bits: 8}}"`
	KeepBatchNorm      bool                `json:"keep_batchnorm,omitempty" doc:"keep batch norms as layers of their own; by default each batch norm right after a quantized convolution folds into it (torch.ao's fuse_modules: the convolution gains a bias, the batch norm leaves the architecture) before its weights are quantized"`
}

// Activations is how layer inputs are quantized (always one scale per tensor).
type Activations struct {
	Bits        int          `json:"bits" minimum:"2" maximum:"8" doc:"input bits (default 8)"`
	Scheme      quant.Scheme `json:"scheme" enum:"symmetric,asymmetric" doc:"input scheme (default asymmetric: inputs after a ReLU are never negative, so a zero point uses the whole grid)"`
	ReduceRange bool         `json:"reduce_range,omitempty" doc:"dynamic mode: quantize inputs as PyTorch's quantize_dynamic does at run time (fbgemm/x86): unsigned codes 0..127 (half of quint8's range), parameters by ATen's ChooseQuantizationParams; with 8-bit symmetric weights, linear and lstm layers then evaluate on integer kernels (docs/QUANTIZATION.md)"`
}

// Override is one layer's weight settings; unset keys take the stage's.
type Override struct {
	Bits        int               `json:"bits,omitempty" minimum:"2" maximum:"8" doc:"this layer's weight bits"`
	Scheme      quant.Scheme      `json:"scheme,omitempty" enum:"symmetric,asymmetric" doc:"this layer's weight scheme"`
	Granularity quant.Granularity `json:"granularity,omitempty" enum:"per_tensor,per_channel" doc:"this layer's weight granularity"`
}

// DefaultSettings are int8 symmetric per-channel weights, 8-bit asymmetric inputs,
// and for static mode 10 batches of min-max calibration.
func DefaultSettings(mode string) Settings {
	return Settings{
		Mode: mode, Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel,
		CalibrationBatches: 10, Observer: "minmax", Percentile: 99.99,
		Activations: Activations{Bits: 8, Scheme: quant.Asymmetric},
	}
}

// Validate checks the rules across keys.
func (s *Settings) Validate() error {
	errs := config.AsErrors(s.Layers.Validate()).Prefix("layers")
	if s.Observer == "percentile" && s.Mode != "static" {
		errs = append(errs, config.Errorf("observer", "percentile calibrates static input ranges: set mode: static, or drop observer (dynamic mode observes every batch whole)"))
	}
	if s.Activations.ReduceRange {
		if s.Mode != "dynamic" {
			errs = append(errs, config.Errorf("activations.reduce_range", "is how PyTorch's dynamic operators quantize inputs at run time: set mode: dynamic, or drop reduce_range"))
		}
		if s.Activations.Scheme != quant.Asymmetric {
			errs = append(errs, config.Errorf("activations.reduce_range", "quantizes inputs to unsigned codes with a zero point: set activations.scheme: asymmetric"))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Overrides)) {
		if len(s.Layers) > 0 && !arch.IsPattern(name) && !slices.ContainsFunc(s.Layers, arch.IsPattern) && !slices.Contains(s.Layers, name) {
			errs = append(errs, config.Errorf("overrides."+name, "%s is not in layers: add it there or remove it here", name))
		}
		if s.Overrides[name] == (Override{}) {
			errs = append(errs, config.Errorf("overrides."+name, "sets nothing: give bits, scheme or granularity"))
		}
	}
	return errs.Err()
}

// LayerSpec is a layer's weight spec: the stage's, with the layer's override
// (by name, or the pattern matching it).
func (s *Settings) LayerSpec(name string) (quant.Spec, error) {
	spec := quant.Spec{Bits: s.Bits, Scheme: s.Scheme, Granularity: s.Granularity}
	o, _, err := stages.Lookup(s.Overrides, name)
	if err != nil {
		return spec, fmt.Errorf("overrides: %w", err)
	}
	if o.Bits != 0 {
		spec.Bits = o.Bits
	}
	if o.Scheme != "" {
		spec.Scheme = o.Scheme
	}
	if o.Granularity != "" {
		spec.Granularity = o.Granularity
	}
	return spec, nil
}

// InputSpec is the spec of every quantized layer's input.
func (s *Settings) InputSpec() quant.Spec {
	return quant.Spec{Bits: s.Activations.Bits, Scheme: s.Activations.Scheme, Granularity: quant.PerTensor, ReduceRange: s.Activations.ReduceRange}
}

// UsesData reports whether static calibration reads the training data.
func (s *Settings) UsesData() bool { return s.Mode == "static" }

// CheckModel checks the layers the keys name against the model the stage receives.
func (s *Settings) CheckModel(in arch.Spec) error {
	errs := stages.CheckLayers(in, "layers", s.Layers, s.Quantizable())
	return append(errs, stages.CheckLayerKeys(in, "overrides", s.Overrides, s.Quantizable())...).Err()
}

// targets are the names of the layers the stage quantizes, in model order.
func (s *Settings) targets(g *arch.Graph) ([]string, error) {
	f := s.Quantizable()
	if len(s.Layers) == 0 {
		return f.Candidates(g), nil
	}
	names, err := f.Resolve(g, s.Layers)
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	return names, nil
}

// ChangeArch is the architecture the stage outputs for an input: without the
// batch norms it folds (pipeline.ArchChanger), so later stages are checked
// against the names that remain.
func (s *Settings) ChangeArch(in arch.Spec) (arch.Spec, error) {
	if s.KeepBatchNorm {
		return in, nil
	}
	g, err := in.Graph()
	if err != nil {
		return in, err
	}
	names, err := s.targets(g)
	if err != nil {
		return in, err
	}
	out, _, err := FoldArch(in, names)
	return out, err
}

// Fold folds the batch norms after the convolutions the stage quantizes into
// them (FoldBatchNorms), unless keep_batchnorm; it returns the pairs folded.
func (s *Settings) Fold(ctx *stages.Context, m *model.Model) (map[string]string, error) {
	if s.KeepBatchNorm {
		return nil, nil
	}
	names, err := s.targets(m.Graph)
	if err != nil {
		return nil, err
	}
	pairs, err := FoldBatchNorms(m, names)
	if err != nil {
		return nil, err
	}
	for _, bn := range slices.Sorted(maps.Keys(pairs)) {
		ctx.Log.Info().Str("batchnorm", bn).Str("into", pairs[bn]).Msg("folded")
	}
	return pairs, nil
}
