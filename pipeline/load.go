package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
	"go.yaml.in/yaml/v3"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/onnx/onnximport"
)

// Options are the layers over the recipe file.
type Options struct {
	// Sets are --set KEY=VALUE overrides, applied in order after the file and the
	// environment. Keys are koanf paths (stages.prune.amount); values parse as YAML.
	Sets []string
	// Env is the process environment (os.Environ()). A variable SHRINK_A__B_C=V
	// overrides the key a.b_c: the prefix dropped, lowercased, "__" separating levels.
	// The names in ReservedEnv configure shrink itself and are skipped.
	Env []string
	// CheckFiles makes the files a recipe names (model.checkpoint, data files,
	// a teacher_checkpoint) problems of the recipe when they are not there.
	// Off for a recipe meant to run elsewhere (export-workflow).
	CheckFiles bool
}

// RecipeEnv lists, sorted, the NAME=VALUE entries of environ that override
// recipe keys: SHRINK_ variables other than the reserved ones.
func RecipeEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SHRINK_") && !ReservedEnv[name] {
			out = append(out, kv)
		}
	}
	slices.Sort(out)
	return out
}

// ReservedEnv are SHRINK_ variables that configure the tool, not the recipe.
var ReservedEnv = map[string]bool{
	"SHRINK_MNIST_DIR": true, "SHRINK_FASHION_MNIST_DIR": true, "SHRINK_GEMM": true, "SHRINK_THREADS": true,
	"SHRINK_QGEMM": true, "SHRINK_SPARSE": true, // the int8 and sparse kernels' overrides
	"SHRINK_CACHE_DIR": true, "SHRINK_LOG_FORMAT": true, "SHRINK_NO_PROGRESS": true,
	"SHRINK_ORT_DIR": true,
	// The test suite's: fail rather than skip without an S3 server, Fashion-MNIST,
	// onnxruntime or PyTorch.
	"SHRINK_REQUIRE_S3": true, "SHRINK_REQUIRE_FASHION": true, "SHRINK_REQUIRE_ORT": true, "SHRINK_REQUIRE_TORCH": true,
}

// Recipe is a loaded, validated recipe: the resolved settings and the expanded
// stages in run order.
type Recipe struct {
	File   string // the path as given
	Dir    string // the recipe's folder: relative paths in it are relative to this
	SHA256 string // of the file's bytes
	// Resolved is the whole recipe after overrides, as plain values: what a run records
	// so it can be replayed.
	Resolved map[string]any

	Version int
	Name    string
	Seed    uint64
	Model   arch.Spec    // with Checkpoint made absolute
	Data    *data.Config // nil when the recipe has no data section
	Stages  []*Stage     // expanded, in run order

	pos       *positions
	baseOrder []string // the recipe's stage ids as written
}

// Stage finds an expanded stage by id.
func (r *Recipe) Stage(id string) *Stage {
	for _, s := range r.Stages {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// StageIDs lists the expanded stage ids in run order.
func (r *Recipe) StageIDs() []string {
	ids := make([]string, len(r.Stages))
	for i, s := range r.Stages {
		ids[i] = s.ID
	}
	return ids
}

// Load reads, layers, validates and plans a recipe. Problems in the recipe come
// back together as Diagnostics; a file that cannot be read is a plain error.
func Load(file string, reg Registry, opt Options) (*Recipe, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return Parse(file, src, reg, opt)
}

// Parse is Load on the recipe's bytes; file names it in diagnostics and anchors its
// relative paths.
func Parse(file string, src []byte, reg Registry, opt Options) (*Recipe, error) {
	sum := sha256.Sum256(src)
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	r := &Recipe{File: file, Dir: dir, SHA256: hex.EncodeToString(sum[:]), pos: newPositions(file)}
	var diags Diagnostics

	tree, ds := parseYAML(file, src, r.pos)
	diags = append(diags, ds...)
	if tree == nil {
		return nil, diags.Sort()
	}
	tree, ds = applyOverrides(tree, opt, r.pos)
	diags = append(diags, ds...)
	r.Resolved = tree

	schemaDiags, bad := validateSchema(reg, tree, r.pos)
	diags = append(diags, schemaDiags...)

	diags = append(diags, r.decodeSections(tree, bad)...)
	diags = append(diags, r.buildStages(reg, tree, bad)...)
	if len(diags) == 0 {
		// Only on a sound recipe: a model section with errors would make every
		// layer name look wrong. An ONNX file that is not there (yet) leaves
		// the network unknown: checkFiles says so when it should be.
		if r.Model.ONNX == "" || r.Model.Imported() {
			diags = r.checkModels()
		}
		if opt.CheckFiles {
			diags = append(diags, r.checkFiles()...)
		}
	}
	if len(diags) > 0 {
		return nil, diags.Sort()
	}
	return r, nil
}

func parseYAML(file string, src []byte, pos *positions) (map[string]any, Diagnostics) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, Diagnostics{yamlError(file, err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, Diagnostics{{Pos{File: file, Line: 1, Col: 1}, "the recipe is empty: it needs at least version, name, model and stages"}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, Diagnostics{{Pos{File: file, Line: root.Line, Col: root.Column}, "a recipe must be a mapping of keys (version, name, model, stages, ...)"}}
	}
	var diags Diagnostics
	tree, _ := toTree(&doc, "", pos, &diags).(map[string]any)
	return tree, diags
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlError turns a YAML syntax error into a diagnostic at its line.
func yamlError(file string, err error) Diagnostic {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Diagnostic{Pos{File: file, Line: max(line, 1), Col: 1}, "YAML syntax: " + m[2]}
	}
	return Diagnostic{Pos{File: file, Line: 1, Col: 1}, "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

// applyOverrides layers the environment, then the --set flags, over the file with
// koanf, recording which paths they set so errors name the flag or variable.
func applyOverrides(tree map[string]any, opt Options, pos *positions) (map[string]any, Diagnostics) {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(tree, ""), nil); err != nil {
		return tree, Diagnostics{{Pos{File: pos.file}, err.Error()}}
	}
	var diags Diagnostics
	set := func(key, raw, origin string) {
		if key == "" || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Contains(key, "..") {
			diags = append(diags, Diagnostic{Pos{File: pos.file, Origin: origin}, fmt.Sprintf("%q is not a key path: write it like stages.prune.amount", key)})
			return
		}
		v, err := parseValue(raw)
		if err != nil {
			diags = append(diags, Diagnostic{Pos{File: pos.file, Origin: origin}, fmt.Sprintf("value %q is not valid YAML: %v", raw, err)})
			return
		}
		// The override owns what it creates or replaces: a mapping it adds
		// (stages.trian in stages.trian.epochs) or a value it turns into one.
		owned := key
		for i, c := range key {
			if c != '.' {
				continue
			}
			prefix := key[:i]
			if !k.Exists(prefix) {
				owned = prefix
				break
			}
			if cur := k.Get(prefix); cur != nil {
				if _, isMap := cur.(map[string]any); !isMap {
					if _, isList := cur.([]any); isList {
						diags = append(diags, Diagnostic{Pos{File: pos.file, Origin: origin},
							fmt.Sprintf("%s is a list: lists are replaced whole, e.g. %s=[...]", prefix, prefix)})
						return
					}
					owned = prefix
					break
				}
			}
		}
		if err := k.Set(key, v); err != nil {
			diags = append(diags, Diagnostic{Pos{File: pos.file, Origin: origin}, err.Error()})
			return
		}
		pos.origin[owned] = origin
	}
	for _, kv := range RecipeEnv(opt.Env) {
		name, val, _ := strings.Cut(kv, "=")
		key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "SHRINK_")), "__", ".")
		set(key, val, "env "+name)
	}
	for _, s := range opt.Sets {
		key, val, ok := strings.Cut(s, "=")
		if !ok {
			diags = append(diags, Diagnostic{Pos{File: pos.file, Origin: "--set " + s}, "expected KEY=VALUE, e.g. --set stages.prune.amount=0.5"})
			continue
		}
		set(strings.TrimSpace(key), val, "--set "+s)
	}
	return k.Raw(), diags
}

// decodeSections decodes the top-level keys and the model and data sections.
func (r *Recipe) decodeSections(tree map[string]any, bad map[string]bool) Diagnostics {
	var diags Diagnostics
	if v, ok := config.AsInt(tree["version"]); ok {
		r.Version = int(v)
	}
	r.Name, _ = tree["name"].(string)
	if v, ok := config.AsInt(tree["seed"]); ok && v >= 0 {
		r.Seed = uint64(v)
	}
	if m, ok := tree["model"].(map[string]any); ok && !bad["model"] {
		spec := arch.Default()
		if errs := config.Decode(m, spec); len(errs) > 0 {
			diags = append(diags, r.fieldDiags("model", errs)...)
		}
		if spec.Checkpoint != "" {
			spec.Checkpoint = r.Path(spec.Checkpoint)
		}
		if spec.ONNX != "" {
			spec.ONNX = r.Path(spec.ONNX)
		}
		r.Model = *spec
	}
	if m, ok := tree["data"].(map[string]any); ok && !bad["data"] {
		cfg := data.DefaultConfig()
		if errs := config.Decode(m, &cfg); len(errs) > 0 {
			diags = append(diags, r.fieldDiags("data", errs)...)
		}
		r.Data = &cfg
	}
	if _, ok := tree["model"].(map[string]any); ok && len(diags) == 0 && !bad["model"] && !bad["data"] {
		r.Model.Resolve(r.sampleShape())
		if r.Model.ONNX != "" {
			diags = append(diags, r.importONNX(tree["model"].(map[string]any))...)
		}
		if r.Model.ONNX == "" || r.Model.Imported() {
			if _, err := r.Model.Graph(); err != nil {
				diags = append(diags, r.fieldDiags("model", config.AsErrors(err))...)
			}
		}
		if len(diags) == 0 && (r.Model.ONNX == "" || r.Model.Imported()) {
			diags = append(diags, r.checkDataFitsModel()...)
		}
	}
	return diags
}

// importONNX reads the network of `model: {onnx: FILE}` into the model
// section: its layers, input shape and classes, which the recipe's own
// classes and input must match when it gives them. A missing file is left
// for checkFiles to report (or, with CheckFiles off, for the machine that
// runs the recipe).
func (r *Recipe) importONNX(section map[string]any) Diagnostics {
	if _, err := os.Stat(r.Model.ONNX); err != nil {
		return nil
	}
	res, err := onnximport.ReadFile(r.Model.ONNX)
	if err != nil {
		return Diagnostics{{r.pos.ofValue("model.onnx"), label("model.onnx") + err.Error()}}
	}
	var diags Diagnostics
	if _, set := section["classes"]; set && r.Model.Classes != res.Spec.Classes {
		diags = append(diags, Diagnostic{r.pos.ofValue("model.classes"), fmt.Sprintf(
			"%sthe ONNX model outputs %d logits, not %d: set classes to %d or drop it", label("model.classes"), res.Spec.Classes, r.Model.Classes, res.Spec.Classes)})
	}
	if _, set := section["input"]; set && !slices.Equal(r.Model.Input, res.Spec.Input) {
		diags = append(diags, Diagnostic{r.pos.ofValue("model.input"), fmt.Sprintf(
			"%sthe ONNX model takes samples of shape %v, not %v: drop input (the file defines it)", label("model.input"), res.Spec.Input, r.Model.Input)})
	}
	r.Model.SetImported(res.Spec.Layers, res.Spec.Input, res.Spec.Classes)
	return diags
}

// sampleShape is one sample's shape as the data gives it: from the data
// section alone, or from the files' headers (idx, npy); nil when neither
// tells (no data section, or files that cannot be read, which are reported
// on their own).
func (r *Recipe) sampleShape() arch.Shape {
	if r.Data == nil {
		return nil
	}
	if s := r.Data.KnownShape(); s != nil {
		return s
	}
	if info, err := data.Peek(*r.Data, r.Dir); err == nil {
		return info.Shape
	}
	return nil
}

// checkDataFitsModel catches a data section the model cannot take: a different
// number of input features, or labels beyond the model's outputs. (IDX files'
// image size is known only once they are read; the runner checks it then.)
func (r *Recipe) checkDataFitsModel() Diagnostics {
	d := r.Data
	if d == nil {
		return nil
	}
	inputs, inputKey := r.Model.Features(), r.Model.InputsKey()
	var diags Diagnostics
	features, featureKey, classes, classKey := d.Known()
	if features == 0 {
		// idx and npy: the files' headers tell (labels are checked once read).
		if s := r.sampleShape(); s != nil {
			features, featureKey = s.Size(), data.SampleKey(*d)
		}
	}
	if features != 0 && features != inputs {
		diags = append(diags, Diagnostic{r.pos.ofValue(featureKey), fmt.Sprintf(
			"%s: the data has %d input features but the model takes %d (%s): make them equal", featureKey, features, inputs, inputKey)})
	}
	if classes > r.Model.Classes {
		diags = append(diags, Diagnostic{r.pos.ofValue("model.classes"), fmt.Sprintf(
			"model.classes: the model has %d outputs but the data has %d classes (%s): labels up to %d would have no output", r.Model.Classes, classes, classKey, classes-1)})
	}
	return diags
}

// Path resolves a path written in the recipe against the recipe's folder.
func (r *Recipe) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.Dir, p)
}

// fieldDiags places a section's field errors at their keys.
func (r *Recipe) fieldDiags(section string, errs config.Errors) Diagnostics {
	var ds Diagnostics
	for _, e := range errs {
		path := joinPath(section, e.Path)
		ds = append(ds, Diagnostic{r.pos.ofValue(path), label(path) + e.Msg})
	}
	return ds
}

// IsDiagnostics tells recipe problems (exit code 2) from other errors.
func IsDiagnostics(err error) bool {
	var ds Diagnostics
	return errors.As(err, &ds)
}

// NamedFile is a file a recipe names, with the key naming it.
type NamedFile struct{ Key, Path string }

// Files lists the files the recipe reads besides itself (model.checkpoint,
// data files, a stage's teacher_checkpoint), paths resolved against its folder.
func (r *Recipe) Files() []NamedFile {
	var out []NamedFile
	add := func(key, path string) {
		if path != "" {
			out = append(out, NamedFile{key, r.Path(path)})
		}
	}
	add("model.checkpoint", r.Model.Checkpoint)
	add("model.onnx", r.Model.ONNX)
	if d := r.Data; d != nil {
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
	}
	seen := map[string]bool{}
	for _, s := range r.Stages {
		fr, ok := s.Config.(config.FileReferrer)
		if !ok || seen[s.Base] {
			continue
		}
		seen[s.Base] = true
		for _, f := range fr.FileReferences() {
			add("stages."+s.Base+"."+f.Path, f.File)
		}
	}
	return out
}

// checkFiles reports the files the recipe names that are not there. The data
// section's are checked by the data package, which knows that data.path is a
// folder of four files and where Fashion-MNIST is installed.
func (r *Recipe) checkFiles() Diagnostics {
	var diags Diagnostics
	for _, f := range r.Files() {
		if strings.HasPrefix(f.Key, "data.") {
			continue
		}
		if _, err := os.Stat(f.Path); err != nil {
			diags = append(diags, Diagnostic{r.pos.ofValue(f.Key), fmt.Sprintf(
				"%s%s: no such file (a relative path is relative to the recipe's folder)", label(f.Key), f.Path)})
		}
	}
	if r.Data != nil {
		for _, e := range data.CheckFiles(*r.Data, r.Dir) {
			path := joinPath("data", e.Path)
			diags = append(diags, Diagnostic{r.pos.ofValue(path), label(path) + e.Msg})
		}
	}
	return diags
}

// EvalBatch is the batch size of evaluation passes that must match how
// predictions are batched (predict, eval): data.eval_batch_size when the
// recipe writes it, else data.batch_size. It matters for dynamically quantized
// models, whose activation ranges are measured per batch; for every other
// model the results do not depend on it.
func (r *Recipe) EvalBatch() int {
	if r.Data == nil {
		return 1
	}
	if d, ok := r.Resolved["data"].(map[string]any); ok {
		if _, set := d["eval_batch_size"]; set {
			return r.Data.EvalBatchSize
		}
	}
	return r.Data.BatchSize
}
