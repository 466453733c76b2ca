package lora_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
	"github.com/shrink-ml/shrink/stages"
	_ "github.com/shrink-ml/shrink/stages/all"
	"github.com/shrink-ml/shrink/stages/lora"
)

var mlp = arch.Spec{Arch: "mlp", Inputs: 16, Hidden: []int{96, 40}, Classes: 4}

// pretrained is an mlp trained a little on one synthetic task; the stage
// adapts it to another (other blobs: another seed).
func pretrained(t *testing.T) *model.Model {
	t.Helper()
	cfg := testkit.Synthetic(16, 4, 400, 32)
	ds := testkit.Load(t, cfg)
	m := model.MustNew(mlp, rand.New(rand.NewPCG(1, 1)))
	opt := model.DefaultOptimizer()
	opt.LR = 0.01
	if err := model.Train(context.Background(), m, ds.Train, model.TrainOptions{Epochs: 3, BatchSize: 32, Optimizer: opt}, rand.New(rand.NewPCG(2, 2))); err != nil {
		t.Fatal(err)
	}
	return m
}

// target is the other task: blobs drawn with another seed.
func target(t *testing.T) (*data.Dataset, *data.Config) {
	t.Helper()
	cfg := testkit.Synthetic(16, 4, 400, 32)
	ds, err := data.Load(cfg, "", 99)
	if err != nil {
		t.Fatal(err)
	}
	return ds, &cfg
}

func run(t *testing.T, in *model.Model, keys map[string]any) (*stages.Result, string) {
	t.Helper()
	ds, cfg := target(t)
	ctx := testkit.Context(t, "lora", mlp, in.Clone(), ds, cfg, 5)
	res, err := testkit.Decode(t, "lora", keys).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res, ctx.Dir
}

func logits(t *testing.T, m *model.Model) []float32 {
	t.Helper()
	ds, _ := target(t)
	out, err := model.Logits(context.Background(), m, ds.Test, 37)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// peftReader is a minimal reader of PEFT's adapter files, written from
// PEFT's conventions rather than from the writer: the config's keys, and the
// tensors base_model.model.<target>.lora_A.weight [r, in] and .lora_B.weight
// [out, r] and base_model.model.<module>.<tensor> of modules_to_save.
type peftReader struct {
	cfg     map[string]any
	tensors *checkpoint.File
}

func readPEFT(t *testing.T, dir string) *peftReader {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := &peftReader{}
	if err := json.Unmarshal(b, &r.cfg); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save", "use_rslora", "bias", "fan_in_fan_out", "task_type", "inference_mode", "init_lora_weights"} {
		if _, ok := r.cfg[k]; !ok {
			t.Errorf("adapter_config.json has no %s", k)
		}
	}
	if r.cfg["peft_type"] != "LORA" || r.cfg["bias"] != "none" || r.cfg["fan_in_fan_out"] != false {
		t.Errorf("adapter_config.json: %v", r.cfg)
	}
	if r.tensors, err = checkpoint.ReadFile(filepath.Join(dir, "adapter_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *peftReader) list(key string) []string {
	var out []string
	v, _ := r.cfg[key].([]any)
	for _, x := range v {
		out = append(out, x.(string))
	}
	return out
}

// apply puts the adapters and saved modules onto base (a model without
// adapters), as PeftModel.from_pretrained would, checking every name and
// shape and that every tensor is used.
func (r *peftReader) apply(t *testing.T, base *model.Model) {
	t.Helper()
	rank := int(r.cfg["r"].(float64))
	alpha := r.cfg["lora_alpha"].(float64)
	used := map[string]bool{}
	get := func(name string, shape []int) []float32 {
		tn, ok := r.tensors.Get(name)
		if !ok {
			t.Fatalf("adapter_model.safetensors has no %s", name)
		}
		if !slices.Equal(tn.Shape, shape) {
			t.Fatalf("%s is %v, want %v", name, tn.Shape, shape)
		}
		used[name] = true
		v, err := tn.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, name := range r.list("target_modules") {
		l := base.Layer(name)
		if l == nil {
			t.Fatalf("target module %s is not in the model", name)
		}
		ws := l.WeightShape()
		in, out := arch.Shape(ws[1:]).Size(), ws[0]
		if err := l.AddAdapter(rank, alpha, r.cfg["use_rslora"].(bool), 0, rand.New(rand.NewPCG(0, 0))); err != nil {
			t.Fatal(err)
		}
		aShape, bShape := []int{rank, in}, []int{out, rank}
		if len(ws) == 4 {
			aShape, bShape = []int{rank, ws[1], ws[2], ws[3]}, []int{out, rank, 1, 1}
		}
		copy(l.Adapter.A.Data, get("base_model.model."+name+".lora_A.weight", aShape))
		copy(l.Adapter.B.Data, get("base_model.model."+name+".lora_B.weight", bShape))
	}
	for _, name := range r.list("modules_to_save") {
		l := base.Layer(name)
		for _, w := range slices.Concat(l.Weights, l.Params, l.Buffers) {
			copy(w.Data, get("base_model.model."+w.Name, w.Shape))
		}
		for _, c := range l.Counters {
			tn, ok := r.tensors.Get("base_model.model." + c.Name)
			if !ok {
				t.Fatalf("no %s", c.Name)
			}
			v, _ := tn.Int64s()
			c.Value, used["base_model.model."+c.Name] = v[0], true
		}
	}
	for _, n := range r.tensors.Names() {
		if !used[n] {
			t.Errorf("adapter_model.safetensors: %s is used by no target or module to save", n)
		}
	}
}

// TestLoRAStage runs the stage over every base, merged or not: the adapters
// train and the base does not, the metrics say what trained and what the base
// takes, the PEFT files load with a PEFT-style reader and reproduce the
// output model's logits, and merging gives W + B A * scaling.
func TestLoRAStage(t *testing.T) {
	in := pretrained(t)
	for _, tc := range []struct {
		base  string
		merge bool
	}{{"float", false}, {"float", true}, {"nf4", false}, {"nf4", true}, {"int8", false}, {"int4", true}} {
		name := tc.base
		if tc.merge {
			name += " merged"
		}
		t.Run(name, func(t *testing.T) {
			keys := map[string]any{"targets": []any{"fc1", "fc2"}, "train_also": []any{"fc3"}, "r": 4, "alpha": 8,
				"dropout": 0.1, "base": tc.base, "merge": tc.merge, "epochs": 3, "optimizer": map[string]any{"name": "adam", "lr": 0.01}}
			res, dir := run(t, in, keys)
			m := res.Model
			met := res.Metrics
			adapters := 4*(16+96) + 4*(96+40)
			head := 40*4 + 4
			if met["trainable_params"] != adapters+head || met["optimizer_state_bytes"] != 8*(adapters+head) {
				t.Errorf("trainable_params %v, optimizer_state_bytes %v; want %d, %d", met["trainable_params"], met["optimizer_state_bytes"], adapters+head, 8*(adapters+head))
			}
			if share := met["trainable_share"].(float64); math.Abs(share-float64(adapters+head)/float64(in.Count().Total+adapters)) > 1e-6 {
				t.Errorf("trainable_share %v", share)
			}
			f32 := int64(4 * (16*96 + 96 + 96*40 + 40))
			if met["base_f32_bytes"] != f32 {
				t.Errorf("base_f32_bytes %v, want %d", met["base_f32_bytes"], f32)
			}
			stored := met["base_bytes"].(int64)
			switch tc.base {
			case "float":
				if stored != f32 {
					t.Errorf("base_bytes %d, want %d", stored, f32)
				}
			case "nf4":
				// bitsandbytes' tensors (codes, absmax codes, maps, JSON), float biases
				qb := quantizedBase(t, in, "nf4")
				want := int64(qb.Layer("fc1").Weights[0].NF4.Bytes() + qb.Layer("fc2").Weights[0].NF4.Bytes() + 4*(96+40))
				if stored != want {
					t.Errorf("base_bytes %d, want %d", stored, want)
				}
			case "int8":
				if want := int64(16*96 + 96*40 + 4*(96+40) + 4*(96+40)); stored != want { // int8 codes, scales, biases
					t.Errorf("base_bytes %d, want %d", stored, want)
				}
			}
			if acc := met["accuracy_after"].(float64); acc <= met["accuracy_before"].(float64) {
				t.Errorf("accuracy %v before, %v after", met["accuracy_before"], acc)
			}

			peft := readPEFT(t, dir)
			if got := peft.list("target_modules"); !slices.Equal(got, []string{"fc1", "fc2"}) {
				t.Errorf("target_modules %v", got)
			}
			if got := peft.list("modules_to_save"); !slices.Equal(got, []string{"fc3"}) {
				t.Errorf("modules_to_save %v", got)
			}
			if peft.cfg["r"] != float64(4) || peft.cfg["lora_alpha"] != float64(8) || peft.cfg["lora_dropout"] != 0.1 || peft.cfg["use_rslora"] != false {
				t.Errorf("config %v", peft.cfg)
			}
			// The base the adapters apply to: the input model itself for a
			// float base (PEFT's flow), the stage's quantized base otherwise.
			base := in.Clone()
			if tc.base != "float" {
				base = quantizedBase(t, in, tc.base)
			}
			peft.apply(t, base)
			want := logits(t, m)
			got := logits(t, base)
			if tc.merge {
				closeLogits(t, got, want, 1e-5)
			} else if !slices.Equal(got, want) {
				t.Error("the adapter files on the base do not reproduce the stage's logits")
			}

			if tc.merge {
				if m.HasAdapters() || slices.ContainsFunc(m.Layers, func(l *model.Layer) bool { return l.Frozen != model.Trainable || l.Quant != nil }) {
					t.Fatal("the merged model is not plain")
				}
				return
			}
			for _, name := range []string{"fc1", "fc2"} {
				l := m.Layer(name)
				if l.Adapter == nil || l.Frozen == model.Trainable {
					t.Fatalf("%s: adapter %v frozen %q", name, l.Adapter != nil, l.Frozen)
				}
				if tc.base == "float" && !slices.Equal(l.Weights[0].Data, in.Layer(name).Weights[0].Data) {
					t.Errorf("the frozen %s changed", name)
				}
			}
			_, back := testkit.SaveAndLoad(t, m)
			if !slices.Equal(logits(t, back), want) {
				t.Error("the saved checkpoint computes other logits")
			}
		})
	}
}

// quantizedBase is the input model with fc1 and fc2 quantized as the stage
// quantizes its base.
func quantizedBase(t *testing.T, in *model.Model, base string) *model.Model {
	t.Helper()
	m := in.Clone()
	for _, name := range []string{"fc1", "fc2"} {
		l := m.Layer(name)
		l.Frozen = model.FrozenParams
		var err error
		if base == "nf4" {
			err = l.QuantizeNF4(64, true)
		} else {
			bits := map[string]int{"int8": 8, "int4": 4}[base]
			err = l.QuantizeFrozen(quantSpec(bits))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func closeLogits(t *testing.T, got, want []float32, tol float64) {
	t.Helper()
	var scale, worst float64
	for i := range want {
		scale = max(scale, math.Abs(float64(want[i])))
		worst = max(worst, math.Abs(float64(got[i])-float64(want[i])))
	}
	if worst > tol*scale {
		t.Errorf("logits off by %g (largest %g)", worst, scale)
	}
}

// TestLoRAResumesWithItsAdapters: a rerun after the last epoch's state was
// saved resumes from it: the adapters come back from the training state,
// bit for bit.
func TestLoRAResumesWithItsAdapters(t *testing.T) {
	in := pretrained(t)
	ds, cfg := target(t)
	keys := map[string]any{"targets": []any{"fc1"}, "train_also": []any{"fc3"}, "r": 2, "alpha": 4, "base": "nf4", "epochs": 2}
	ctx := testkit.Context(t, "lora", mlp, in.Clone(), ds, cfg, 5)
	first, err := testkit.Decode(t, "lora", keys).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again := testkit.Context(t, "lora", mlp, in.Clone(), ds, cfg, 5)
	again.StateDir = ctx.StateDir // the saved state of both epochs
	second, err := testkit.Decode(t, "lora", keys).Run(again)
	if err != nil {
		t.Fatal(err)
	}
	a, b := first.Model.Layer("fc1").Adapter, second.Model.Layer("fc1").Adapter
	if !slices.Equal(a.A.Data, b.A.Data) || !slices.Equal(a.B.Data, b.B.Data) {
		t.Fatal("the resumed run's adapters differ")
	}
	if !slices.Equal(first.Model.Layer("fc3").Weights[0].Data, second.Model.Layer("fc3").Weights[0].Data) {
		t.Fatal("the resumed run's head differs")
	}
}

// TestLoRAConfigErrors: the keys' rules, with the key at fault named.
func TestLoRAConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys map[string]any
		want string
	}{
		{"overlap", map[string]any{"targets": []any{"fc1"}, "train_also": []any{"fc1"}}, "train_also.0: fc1 is also a target"},
		{"blocksize", map[string]any{"targets": []any{"fc1"}, "base": "nf4", "blocksize": 96}, "blocksize: 96 is not a power of two"},
		{"no targets", map[string]any{"targets": []any{}}, "targets"},
		{"bad base", map[string]any{"targets": []any{"fc1"}, "base": "fp4"}, "base"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := stages.Default.Get("lora")
			cfg := st.New()
			errs := config.Decode(tc.keys, cfg)
			if len(errs) == 0 || !strings.Contains(errs.Error(), tc.want) {
				t.Fatalf("errors %v, want %q", errs, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		spec arch.Spec
		keys map[string]any
		want string
	}{
		{"a relu", arch.Spec{Arch: "lenet5", Classes: 10}, map[string]any{"targets": []any{"fc9"}}, "targets.0"},
		{"a dilated conv", dilated(), map[string]any{"targets": []any{"conv"}}, "targets.0: layer \"conv\" is a conv2d: this stage acts on linear and conv2d layers (ungrouped, undilated)"},
		{"train_also a norm", arch.Spec{Arch: "resnet", Depth: 8, Width: 2, Classes: 3, Input: []int{1, 8, 8}}, map[string]any{"targets": []any{"conv1"}, "train_also": []any{"bn1", "fc"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testkit.Decode(t, "lora", tc.keys).(*lora.Config)
			err := c.CheckModel(tc.spec)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func dilated() arch.Spec {
	return arch.Spec{Input: []int{1, 9, 9}, Classes: 3, Layers: []arch.LayerSpec{
		arch.NewLayer("conv", "conv2d", map[string]any{"out": 2, "kernel": 3, "dilation": 2}),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc", "linear", map[string]any{"out": 3}),
	}}
}

func quantSpec(bits int) quant.Spec {
	return quant.Spec{Bits: bits, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
}

// TestLoRAStageBatchNorm: on a ResNet, batch norm statistics stay with
// batchnorm: frozen and update with batchnorm: update, and then travel in
// the adapter file as modules_to_save; either way the files reproduce the
// stage's logits on the input model.
func TestLoRAStageBatchNorm(t *testing.T) {
	spec := arch.Spec{Arch: "resnet", Depth: 8, Width: 2, Classes: 4, Input: []int{1, 6, 6}}
	cfg := testkit.Synthetic(36, 4, 200, 20)
	ds, err := data.Load(cfg, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	in := model.MustNew(spec, rand.New(rand.NewPCG(4, 4)))
	for _, bn := range []string{"frozen", "update"} {
		t.Run(bn, func(t *testing.T) {
			keys := map[string]any{"targets": []any{"re:.*conv.*|.*downsample\\.0"}, "train_also": []any{"fc"}, "r": 2, "alpha": 2,
				"batchnorm": bn, "epochs": 1}
			ctx := testkit.Context(t, "lora", spec, in.Clone(), ds, &cfg, 5)
			res, err := testkit.Decode(t, "lora", keys).Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m := res.Model
			changed := !slices.Equal(m.Layer("bn1").Buffers[0].Data, in.Layer("bn1").Buffers[0].Data)
			if changed != (bn == "update") {
				t.Errorf("bn1's running mean changed: %v", changed)
			}
			if !slices.Equal(m.Layer("bn1").Params[0].Data, in.Layer("bn1").Params[0].Data) {
				t.Error("bn1's weight trained")
			}
			peft := readPEFT(t, ctx.Dir)
			saved := peft.list("modules_to_save")
			if (len(saved) > 1) != (bn == "update") || saved[0] != "fc" {
				t.Errorf("modules_to_save %v", saved)
			}
			var convs int
			for _, l := range m.Layers {
				if l.Adapter != nil {
					convs++
				}
			}
			// conv1, two per block, two downsampling shortcuts
			if n := len(peft.list("target_modules")); n != 9 || convs != n {
				t.Errorf("target_modules %v, %d adapters", peft.list("target_modules"), convs)
			}
			base := in.Clone()
			peft.apply(t, base)
			got, err := model.Logits(context.Background(), base, ds.Test, 16)
			if err != nil {
				t.Fatal(err)
			}
			want, err := model.Logits(context.Background(), m, ds.Test, 16)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Error("the adapter files on the input model do not reproduce the stage's logits")
			}
		})
	}
}
