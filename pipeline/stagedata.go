package pipeline

import (
	"fmt"
	"maps"
	"strings"

	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
)

// A stage's data key overrides the recipe's data section for that stage: its
// keys are merged over the section's (one level deep: a key it sets replaces
// the recipe's value whole, the others keep theirs), and the result is the
// data the stage trains, calibrates and is evaluated on. It enters the stage
// key as the recipe's data does (the data fingerprint and the batching), so
// stages without one keep their keys. One recipe can so train on MNIST and
// adapt to Fashion-MNIST (recipes/lora-transfer.yaml).

// StageData is the data a stage uses: its own data key merged over the
// recipe's data section, or the recipe's (nil when there is neither).
func (r *Recipe) StageData(s *Stage) *data.Config {
	if s.Data != nil {
		return s.Data
	}
	return r.Data
}

// decodeStageData decodes a stage's data key merged over the recipe's data
// section; errors name the stage's keys.
func (r *Recipe) decodeStageData(b *baseStage, tree map[string]any) Diagnostics {
	over, ok := b.raw["data"].(map[string]any)
	if !ok {
		return nil
	}
	merged := map[string]any{}
	if recipe, ok := tree["data"].(map[string]any); ok {
		merged = maps.Clone(recipe)
	}
	maps.Copy(merged, over)
	cfg := data.DefaultConfig()
	var diags Diagnostics
	for _, e := range config.Decode(merged, &cfg) {
		top, _, _ := strings.Cut(e.Path, ".")
		path := "stages." + b.id + ".data." + e.Path
		msg := label(path) + e.Msg
		if _, own := over[top]; !own {
			// The recipe's value, wrong only with this stage's others.
			path = "stages." + b.id + ".data"
			msg = fmt.Sprintf("%s: with the recipe's data.%s: %s", path, e.Path, e.Msg)
		}
		diags = append(diags, Diagnostic{r.pos.ofValue(path), msg})
	}
	b.data = &cfg
	return diags
}

// checkStageData checks each stage's own data as the recipe's is checked: it
// must give samples of the model's size and labels below its classes (IDX
// and npy files are checked when read, as the recipe's).
func (r *Recipe) checkStageData() Diagnostics {
	var diags Diagnostics
	seen := map[string]bool{}
	for _, s := range r.Stages {
		if s.Data == nil || seen[s.Base] {
			continue
		}
		seen[s.Base] = true
		d := s.Data
		prefix := "stages." + s.Base + ".data"
		at := func(key string) string { return prefix + strings.TrimPrefix(key, "data") }
		features, featureKey, classes, classKey := d.Known()
		if features != 0 && features != r.Model.Features() {
			diags = append(diags, Diagnostic{r.pos.ofValue(at(featureKey)), fmt.Sprintf(
				"%s: the data has %d input features but the model takes %d (%s): make them equal", at(featureKey), features, r.Model.Features(), r.Model.InputsKey())})
		}
		if classes > r.Model.Classes {
			diags = append(diags, Diagnostic{r.pos.ofValue(at(classKey)), fmt.Sprintf(
				"%s: the data has %d classes but the model has %d outputs (model.classes)", at(classKey), classes, r.Model.Classes)})
		}
	}
	return diags
}

// stageDataFiles are the files the stages' own data sections name.
func (r *Recipe) stageDataFiles() []NamedFile {
	var out []NamedFile
	seen := map[string]bool{}
	for _, s := range r.Stages {
		if s.Data == nil || seen[s.Base] {
			continue
		}
		seen[s.Base] = true
		for _, f := range dataFiles(s.Data) {
			out = append(out, NamedFile{"stages." + s.Base + "." + f.Key, r.Path(f.Path)})
		}
	}
	return out
}

// dataFiles are the files a data section names, keyed data.path, ...
func dataFiles(d *data.Config) []NamedFile {
	var out []NamedFile
	add := func(key, path string) {
		if path != "" {
			out = append(out, NamedFile{key, path})
		}
	}
	add("data.path", d.Path)
	add("data.train_images", d.TrainImages)
	add("data.train_labels", d.TrainLabels)
	add("data.test_images", d.TestImages)
	add("data.test_labels", d.TestLabels)
	for _, s := range []struct {
		key string
		a   *data.Arrays
	}{{"data.train", d.Train}, {"data.test", d.Test}} {
		if s.a != nil {
			add(s.key+".x", s.a.X)
			add(s.key+".y", s.a.Y)
		}
	}
	return out
}

// StageEvalBatch is EvalBatch for the data a stage uses: its data's
// eval_batch_size when its data key or the recipe's data section writes one,
// else its batch_size.
func (r *Recipe) StageEvalBatch(s *Stage) int {
	if s.Data == nil {
		return r.EvalBatch()
	}
	set := func(m any) bool {
		d, ok := m.(map[string]any)
		if !ok {
			return false
		}
		_, ok = d["eval_batch_size"]
		return ok
	}
	own := false
	if stages, ok := r.Resolved["stages"].(map[string]any); ok {
		if st, ok := stages[s.Base].(map[string]any); ok {
			own = set(st["data"])
		}
	}
	if own || set(r.Resolved["data"]) {
		return s.Data.EvalBatchSize
	}
	return s.Data.BatchSize
}
