package lora

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/model"
)

// The files PEFT's save_pretrained writes for a LoRA adapter, which
// PeftModel.from_pretrained reads back onto the base model.
const (
	AdapterWeights = "adapter_model.safetensors"
	AdapterConfig  = "adapter_config.json"
	// Prefix is what PEFT's state dict names start with: the PeftModel's
	// base_model (a LoraModel) and its model (the wrapped network).
	Prefix = "base_model.model."
)

// PEFTConfig is adapter_config.json: LoraConfig's fields that PEFT 0.x
// writes and reads (from 0.9 on all of these exist; a reader ignores none,
// and older versions refuse unknown ones, so no others are written).
type PEFTConfig struct {
	// Fields in the order json.dumps(sort_keys=True) writes them, as PEFT does.
	AlphaPattern      map[string]float64 `json:"alpha_pattern"`
	BaseModel         *string            `json:"base_model_name_or_path"`
	Bias              string             `json:"bias"`
	FanInFanOut       bool               `json:"fan_in_fan_out"`
	InferenceMode     bool               `json:"inference_mode"`
	InitLoraWeights   bool               `json:"init_lora_weights"`
	LayersPattern     *string            `json:"layers_pattern"`
	LayersToTransform *[]int             `json:"layers_to_transform"`
	LoraAlpha         float64            `json:"lora_alpha"`
	LoraDropout       float64            `json:"lora_dropout"`
	ModulesToSave     []string           `json:"modules_to_save"`
	PeftType          string             `json:"peft_type"`
	R                 int                `json:"r"`
	RankPattern       map[string]int     `json:"rank_pattern"`
	Revision          *string            `json:"revision"`
	TargetModules     []string           `json:"target_modules"`
	TaskType          *string            `json:"task_type"`
	UseDoRA           bool               `json:"use_dora"`
	UseRSLoRA         bool               `json:"use_rslora"`
}

// writeAdapter writes adapter_model.safetensors (the adapters as
// base_model.model.NAME.lora_A.weight [r, in] and ...lora_B.weight [out, r],
// conv adapters [r, in, kh, kw] and [out, r, 1, 1]; every tensor of the saved
// layers as base_model.model.TENSOR) and adapter_config.json into dir, and
// returns the adapter file's size.
func writeAdapter(dir string, m *model.Model, c *Config, targets, saved []string) (int64, error) {
	f := &checkpoint.File{Metadata: map[string]string{"format": "pt"}}
	for _, name := range targets {
		a := m.Layer(name).Adapter
		f.Tensors = append(f.Tensors,
			checkpoint.F32(Prefix+a.A.Name, a.A.Shape, a.A.Data),
			checkpoint.F32(Prefix+a.B.Name, a.B.Shape, a.B.Data))
	}
	for _, name := range saved {
		l := m.Layer(name)
		for _, w := range slices.Concat(l.Weights, l.Params, l.Buffers) {
			f.Tensors = append(f.Tensors, checkpoint.F32(Prefix+w.Name, w.Shape, w.Data))
		}
		for _, k := range l.Counters {
			f.Tensors = append(f.Tensors, checkpoint.I64(Prefix+k.Name, []int{}, []int64{k.Value}))
		}
	}
	slices.SortFunc(f.Tensors, func(a, b checkpoint.Tensor) int { return strings.Compare(a.Name, b.Name) })
	path := filepath.Join(dir, AdapterWeights)
	if _, err := checkpoint.WriteFile(path, f); err != nil {
		return 0, err
	}
	cfg := PEFTConfig{
		PeftType: "LORA", InferenceMode: true, R: c.R, LoraAlpha: c.Alpha, LoraDropout: c.Dropout,
		TargetModules: targets, ModulesToSave: saved, Bias: "none", UseRSLoRA: c.RSLoRA, InitLoraWeights: true,
		RankPattern: map[string]int{}, AlphaPattern: map[string]float64{},
	}
	if len(saved) == 0 {
		cfg.ModulesToSave = nil // PEFT's default: null
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return 0, err
	}
	if err := checkpoint.WriteBytes(filepath.Join(dir, AdapterConfig), append(b, '\n')); err != nil {
		return 0, fmt.Errorf("%s: %w", AdapterConfig, err)
	}
	return fileSize(path), nil
}
