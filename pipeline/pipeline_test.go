package pipeline

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/config"
)

// Tests build their own registry: a transforming stage, one with a reference to
// another stage (like distill's teacher), and a fan-in stage (like select).

type xform struct {
	Amount any    `json:"amount,omitempty" doc:"anything"`
	Epochs int    `json:"epochs" minimum:"0"`
	Method string `json:"method,omitempty" enum:"a,b"`
	Data   bool   `json:"uses_data"`
}

func (x *xform) UsesData() bool { return x.Data }

type teach struct {
	Teacher string `json:"teacher"`
}

func (t *teach) References() []config.Ref {
	if t.Teacher == "" {
		return nil
	}
	return []config.Ref{{Path: "teacher", Stage: t.Teacher}}
}

func (t *teach) Validate() error {
	if t.Teacher == "" {
		return config.Errorf("teacher", "name the teacher stage")
	}
	return nil
}

type pick struct {
	Metric string `json:"metric"`
}

type testRegistry map[string]StageType

func (r testRegistry) Lookup(n string) (StageType, bool) { t, ok := r[n]; return t, ok }
func (r testRegistry) Types() []StageType {
	var out []StageType
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for k := range r {
			if !yield(k) {
				return
			}
		}
	}) {
		out = append(out, r[n])
	}
	return out
}

var reg = testRegistry{
	"xform": {Name: "xform", New: func() any { return &xform{Epochs: 1} }},
	"teach": {Name: "teach", New: func() any { return &teach{} }},
	"pick":  {Name: "pick", New: func() any { return &pick{} }, FanIn: true},
}

const head = "version: 1\nname: t\nmodel: {arch: mlp, inputs: 32}\ndata: {dataset: synthetic}\nstages:\n"

func parse(t *testing.T, stages string, opt Options) (*Recipe, error) {
	t.Helper()
	return Parse("r.yaml", []byte(head+stages), reg, opt)
}

func mustParse(t *testing.T, stages string) *Recipe {
	t.Helper()
	r, err := parse(t, stages, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ids(r *Recipe) []string { return r.StageIDs() }

func TestRunOrderFollowsRecipeOrderAmongReadyStages(t *testing.T) {
	r := mustParse(t, `
  z: {type: xform}
  c: {type: xform, needs: [b]}
  b: {type: xform, needs: [z]}
  a: {type: xform}
`)
	want := []string{"z", "b", "c", "a"}
	if got := ids(r); !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestMatrixExpansionAndFanOut(t *testing.T) {
	r := mustParse(t, `
  train: {type: xform}
  prune:
    type: xform
    needs: [train]
    matrix: {method: [a, b], amount: [0.5, 1]}
  qat: {type: xform, needs: [prune]}
  best: {type: pick, needs: [prune]}
  after: {type: xform, needs: [best]}
`)
	want := []string{
		"train",
		"prune[amount=0.5,method=a]", "prune[amount=0.5,method=b]", "prune[amount=1,method=a]", "prune[amount=1,method=b]",
		"qat[amount=0.5,method=a]", "qat[amount=0.5,method=b]", "qat[amount=1,method=a]", "qat[amount=1,method=b]",
		"best", "after",
	}
	if got := ids(r); !slices.Equal(got, want) {
		t.Fatalf("ids\n got %v\nwant %v", got, want)
	}
	q := r.Stage("qat[amount=1,method=b]")
	if !slices.Equal(q.Needs, []string{"prune[amount=1,method=b]"}) {
		t.Errorf("qat needs %v", q.Needs)
	}
	if got := r.Stage("best").Needs; len(got) != 4 || got[0] != "prune[amount=0.5,method=a]" {
		t.Errorf("select needs %v, want all four branches", got)
	}
	if got := r.Stage("after").Needs; !slices.Equal(got, []string{"best"}) {
		t.Errorf("after a select: needs %v, want [best] (no fan-out)", got)
	}
	p := r.Stage("prune[amount=1,method=b]").Config.(*xform)
	if p.Method != "b" || p.Amount != 1 {
		t.Errorf("expansion config %+v", p)
	}
}

func TestFanOutKeepsBranchesConsistent(t *testing.T) {
	// A stage reading two stages downstream of one matrix follows one branch of it.
	r := mustParse(t, `
  train: {type: xform, matrix: {epochs: [1, 2]}}
  prune: {type: xform, needs: [train]}
  student: {type: teach, needs: [prune], teacher: train}
`)
	want := []string{"train[epochs=1]", "train[epochs=2]", "prune[epochs=1]", "prune[epochs=2]", "student[epochs=1]", "student[epochs=2]"}
	if got := ids(r); !slices.Equal(got, want) {
		t.Fatalf("ids %v, want %v", got, want)
	}
	s := r.Stage("student[epochs=2]")
	if s.Ref("teacher") != "train[epochs=2]" || s.Needs[0] != "prune[epochs=2]" {
		t.Errorf("student[epochs=2] reads %v and teacher %s", s.Needs, s.Ref("teacher"))
	}
}

func TestMatrixKeysSharedByTwoStagesAreQualified(t *testing.T) {
	r := mustParse(t, `
  a: {type: xform, matrix: {epochs: [1, 2]}}
  b: {type: xform, needs: [a], matrix: {epochs: [3]}}
`)
	if got := ids(r); !slices.Contains(got, "b[a.epochs=2,b.epochs=3]") {
		t.Fatalf("ids %v", got)
	}
}

func TestFloatAndIntMatrixValuesStayDistinct(t *testing.T) {
	r := mustParse(t, `
  p: {type: xform, matrix: {amount: [1, 1.0]}}
`)
	if got := ids(r); !slices.Equal(got, []string{"p[amount=1]", "p[amount=1.0]"}) {
		t.Fatalf("ids %v", got)
	}
}

func TestReferencesAreEdges(t *testing.T) {
	_, err := parse(t, `
  a: {type: teach, teacher: b}
  b: {type: teach, teacher: a}
`, Options{})
	if err == nil || !strings.Contains(err.Error(), "cycle: a -> b -> a") {
		t.Fatalf("want a cycle through teacher references, got %v", err)
	}
	_, err = parse(t, "  a: {type: teach, teacher: nope}\n", Options{})
	if err == nil || !strings.Contains(err.Error(), `stages.a.teacher: unknown stage "nope"`) {
		t.Fatalf("want an unknown reference, got %v", err)
	}
}

func TestCycleMessagesAreDeterministic(t *testing.T) {
	src := `
  d: {type: xform, needs: [c]}
  c: {type: xform, needs: [b]}
  b: {type: xform, needs: [d]}
  x: {type: xform, needs: [y]}
  y: {type: xform, needs: [x]}
`
	var first string
	for i := 0; i < 20; i++ {
		_, err := parse(t, src, Options{})
		if err == nil {
			t.Fatal("want cycles")
		}
		if i == 0 {
			first = err.Error()
			if !strings.Contains(first, "cycle: b -> c -> d -> b") || !strings.Contains(first, "cycle: x -> y -> x") {
				t.Fatalf("cycles: %s", first)
			}
		} else if err.Error() != first {
			t.Fatalf("run %d differs:\n%s\n%s", i, err, first)
		}
	}
}

func TestOverridesLayerEnvThenSet(t *testing.T) {
	src := "  train: {type: xform, epochs: 1}\n"
	opt := Options{
		Env: []string{"SHRINK_STAGES__TRAIN__EPOCHS=2", "SHRINK_SEED=9", "PATH=/bin", "SHRINK_MNIST_DIR=/x",
			"SHRINK_FASHION_MNIST_DIR=/y", "SHRINK_REQUIRE_FASHION=1", "SHRINK_REQUIRE_S3=1"},
		Sets: []string{"stages.train.epochs=3"},
	}
	r, err := parse(t, src, opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Stage("train").Config.(*xform).Epochs; got != 3 {
		t.Errorf("epochs %d: --set must win over the environment and the file", got)
	}
	if r.Seed != 9 {
		t.Errorf("seed %d from SHRINK_SEED", r.Seed)
	}
	if r.Resolved["seed"] != 9 {
		t.Errorf("resolved recipe lacks the override: %v", r.Resolved["seed"])
	}
}

func TestOverrideErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		set, want string
	}{
		{"stages.train.epochs=-3", "--set stages.train.epochs=-3: stages.train.epochs: -3 is below the minimum 0"},
		{"stages.train.epochz=3", "--set stages.train.epochz=3: stages.train.epochz: unknown key (did you mean \"epochs\"?)"},
		{"seed", "--set seed: expected KEY=VALUE"},
		{"stages..x=1", "is not a key path"},
		{"stages.train.method=[a", "is not valid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.set, func(t *testing.T) {
			_, err := parse(t, "  train: {type: xform}\n", Options{Sets: []string{tt.set}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
	_, err := parse(t, "  train: {type: xform}\n", Options{Env: []string{"SHRINK_STAGES__TRAIN__EPOCHS=many"}})
	if err == nil || !strings.Contains(err.Error(), "env SHRINK_STAGES__TRAIN__EPOCHS: stages.train.epochs: must be an integer") {
		t.Fatalf("env error: %v", err)
	}
}

func TestSetParsesYAMLValues(t *testing.T) {
	r, err := parse(t, "  train: {type: xform}\n", Options{Sets: []string{"stages.train.amount=[1, 0.5]", "stages.train.method=b"}})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Stage("train").Config.(*xform)
	if fmt.Sprint(c.Amount) != "[1 0.5]" || c.Method != "b" {
		t.Fatalf("config %+v", c)
	}
}

// JSON has no infinity: YAML's .inf and .nan reach the stage as words, and the
// resolved recipe (run.json, keys) stays encodable.
func TestNonFiniteYAMLNumbersBecomeWords(t *testing.T) {
	r, err := parse(t, "  train: {type: xform, amount: .inf}\n", Options{Sets: []string{"stages.train.amount=[-.inf, .nan, .Inf]"}})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Stage("train").Config.(*xform)
	if fmt.Sprint(c.Amount) != "[-inf nan inf]" {
		t.Fatalf("config %+v", c)
	}
	if _, err := json.Marshal(r.Resolved); err != nil {
		t.Fatalf("resolved recipe: %v", err)
	}
}

func TestStageValidationErrorsGetPositions(t *testing.T) {
	_, err := parse(t, "  a: {type: teach}\n  b:\n    type: teach\n    teacher: ''\n    matrix: {teacher: [a, '']}\n", Options{})
	ds, ok := err.(Diagnostics)
	if !ok {
		t.Fatalf("want diagnostics, got %v", err)
	}
	got := ds.Error()
	for _, want := range []string{
		"r.yaml:6:6: stages.a.teacher: name the teacher stage",
		"r.yaml:10:27: stages.b.teacher: name the teacher stage (in matrix combination teacher=)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

func TestDataUserNeedsData(t *testing.T) {
	_, err := Parse("r.yaml", []byte("version: 1\nname: t\nmodel: {arch: mlp}\nstages:\n  a: {type: xform, uses_data: true}\n  b: {type: xform}\n"), reg, Options{})
	if err == nil || !strings.Contains(err.Error(), "stages.a: a xform stage with these settings trains or evaluates") || strings.Contains(err.Error(), "stages.b") {
		t.Fatalf("got %v", err)
	}
}

func TestRelativePathsResolveAgainstTheRecipe(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "r.yaml")
	os.MkdirAll(filepath.Dir(path), 0o755)
	os.WriteFile(path, []byte("version: 1\nname: t\nmodel: {arch: mlp, checkpoint: w.safetensors}\nstages: {a: {type: xform}}\n"), 0o644)
	r, err := Load(path, reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "sub", "w.safetensors"); r.Model.Checkpoint != want {
		t.Fatalf("checkpoint %s, want %s", r.Model.Checkpoint, want)
	}
}

// TestOverrideErrorsNameTheOverride: an error in what an override created or
// replaced names the flag or variable, not a line of the file; a list element
// cannot be set on its own.
func TestOverrideErrorsNameTheOverride(t *testing.T) {
	for _, tc := range []struct {
		opt  Options
		want string
	}{
		// A typo of a stage is said as one, not as a new stage lacking its type.
		{Options{Sets: []string{"stages.trian.epochs=3"}}, `--set stages.trian.epochs=3: stages.trian: the recipe has no stage trian (did you mean "train"?) (its stages: train); to add one, give it a type as well: --set stages.trian.type=TYPE`},
		{Options{Env: []string{"SHRINK_STAGES__TRIAN__EPOCHS=3"}}, `env SHRINK_STAGES__TRIAN__EPOCHS: stages.trian: the recipe has no stage trian (did you mean "train"?) (its stages: train); to add one, give it a type as well: SHRINK_STAGES__TRIAN__TYPE=TYPE`},
		{Options{Sets: []string{"stages.train.epochs.x=1"}}, "--set stages.train.epochs.x=1: stages.train.epochs"},
		{Options{Sets: []string{"stages.train.amount=[1, 2]", "stages.train.amount.0=3"}}, "stages.train.amount is a list: lists are replaced whole"},
	} {
		_, err := parse(t, "  train: {type: xform}\n", tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "missing required key") {
			t.Errorf("%+v: %v, want %q", tc.opt, err, tc.want)
		}
	}
	// A new stage with its type is fine.
	if _, err := parse(t, "  train: {type: xform}\n", Options{Env: []string{"SHRINK_STAGES__EXTRA__EPOCHS=3", "SHRINK_STAGES__EXTRA__TYPE=xform"}}); err != nil {
		t.Errorf("a stage added by the environment: %v", err)
	}
}

// TestOutOfRangeIntegersAreErrors: an integer beyond int64 (YAML resolves it to
// a float or a uint64) or a whole float no integer holds (1e30) is an error at
// its position, never a silent 0 or a rounded number: a seed of 2^64 once
// became seed 0 and reused a seed-0 run's results. An override that replaces
// such a value fixes the recipe.
func TestOutOfRangeIntegersAreErrors(t *testing.T) {
	for _, tc := range []struct {
		name, seed string
		opt        Options
		want       string // "" for no error
	}{
		{"2^64", "18446744073709551616", Options{}, "r.yaml:2:7: seed: 18446744073709551616 is out of range: integers in a recipe are from"},
		{"2^63", "9223372036854775808", Options{}, "r.yaml:2:7: seed: 9223372036854775808 is out of range"},
		{"1e30", "1e30", Options{}, "r.yaml:2:7: seed: the number 1e+30 is out of range: write a whole number from 0 to 9223372036854775807"},
		{"2^63-1", "9223372036854775807", Options{}, ""},
		{"set 2^64", "1", Options{Sets: []string{"seed=18446744073709551616"}}, "--set seed=18446744073709551616: seed: 18446744073709551616 is out of range"},
		{"env 1e30", "1", Options{Env: []string{"SHRINK_SEED=1e30"}}, "env SHRINK_SEED: seed: the number 1e+30 is out of range"},
		{"replaced by --set", "18446744073709551616", Options{Sets: []string{"seed=7"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "version: 1\nseed: " + tc.seed + "\nname: t\nmodel: {arch: mlp, inputs: 32}\nstages:\n  a: {type: xform}\n"
			r, err := Parse("r.yaml", []byte(src), reg, tc.opt)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.Seed == 0 {
					t.Fatal("seed 0")
				}
				return
			}
			ds, ok := err.(Diagnostics)
			if !ok || len(ds) != 1 || !strings.Contains(ds.Error(), tc.want) {
				t.Fatalf("got %v, want one diagnostic %q", err, tc.want)
			}
		})
	}
	// Stage keys too, reported once (not again as a rounded float).
	_, err := parse(t, "  a: {type: xform, epochs: 99999999999999999999}\n  b: {type: xform, epochs: 1e30}\n", Options{})
	ds, _ := err.(Diagnostics)
	if len(ds) != 2 || !strings.Contains(ds[0].String(), "r.yaml:6:28: stages.a.epochs: 99999999999999999999 is out of range") ||
		!strings.Contains(ds[1].String(), "r.yaml:7:28: stages.b.epochs: the number 1e+30 is out of range for an integer") {
		t.Fatalf("got %v", err)
	}
}

// TestRecipeSizeLimits: an alias bomb (a few hundred bytes expanding to
// billions of values) and an oversized file are refused with one clear error
// each, before they take the memory they would; so are files that are not
// files (/dev/zero would be read forever, a FIFO would block).
func TestRecipeSizeLimits(t *testing.T) {
	bomb := head + "  a: {type: xform}\nx0: &x0 [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 1; i <= 9; i++ {
		bomb += fmt.Sprintf("x%d: &x%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*x%d, ", i-1), 10), ", "))
	}
	_, err := Parse("bomb.yaml", []byte(bomb), reg, Options{})
	ds, ok := err.(Diagnostics)
	if !ok || len(ds) != 1 || !strings.Contains(ds[0].Msg, "the recipe expands to more than 100000 values (YAML aliases") {
		t.Fatalf("alias bomb: %v", err)
	}

	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(head+"  a: {type: xform}\n#"+strings.Repeat("x", MaxRecipeBytes)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{big, "a recipe may be at most 262144 (256 KiB)"},
		{"/dev/zero", "/dev/zero is not a regular file"},
		{dir, "is not a regular file"},
	} {
		if _, err := Load(tc.file, reg, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.file, err, tc.want)
		}
	}
}

// TestYAMLSyntaxPositions: go-yaml reports a tab in indentation and an
// unclosed bracket a line early; the diagnostic points at the tab and at the
// bracket left open, skipping brackets in quotes, comments and plain scalars.
func TestYAMLSyntaxPositions(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line, col int
	}{
		{"tab in a block", "version: 1\nname: t\nstages:\n  a:\n    type: xform\n\tepochs: 2\n", 6, 1},
		{"tab after spaces", "version: 1\nname: t\nstages:\n  a:\n    type: xform\n    \tepochs: 2\n", 6, 5},
		{"unclosed [ in a flow mapping", "version: 1\nname: t\nmodel: {arch: mlp, hidden: [16, 8}\nstages:\n  a: {type: xform}\n", 3, 28},
		{"unclosed [ at the end", "version: 1\nname: t\nstages:\n  a:\n    type: xform\n    needs: [x\n    epochs: 2\n", 6, 12},
		{"brackets in quotes and comments", "version: 1\nname: t # a [comment\nstages:\n  a: {type: xform, method: \"[}\", note: '{'}\n  b: {type: xform, needs: [a}\n", 5, 27},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("r.yaml", []byte(tc.src), reg, Options{})
			ds, ok := err.(Diagnostics)
			if !ok || len(ds) != 1 || ds[0].Pos.Line != tc.line || ds[0].Pos.Col != tc.col {
				t.Fatalf("got %v, want r.yaml:%d:%d", err, tc.line, tc.col)
			}
		})
	}
}

// TestWarnings: valid but likely not meant, reported without failing: a
// stage that starts from random weights (no needs) and does not train them,
// and a SHRINK_ variable that is neither a recipe key nor shrink's (it used to
// break every command as an unknown key).
func TestWarnings(t *testing.T) {
	r, err := parse(t, "  a: {type: xform, uses_data: true}\n  b: {type: xform}\n  c: {type: xform, needs: [a]}\n",
		Options{Env: []string{"SHRINK_FOO=1", "SHRINK_THREDS=2"}})
	if err != nil {
		t.Fatal(err)
	}
	got := r.Warnings.Error()
	for _, want := range []string{
		"env SHRINK_FOO: ignored: foo is neither a recipe key (version, name, seed, model, data, stages) nor one of shrink's own variables",
		`env SHRINK_THREDS: ignored: threds is neither a recipe key`, `(did you mean "SHRINK_THREADS"?)`,
		"r.yaml:7:3: stages.b: has no needs, so it starts from the model's random initial weights (no model.checkpoint), and it does not train them (did you mean needs: [a]?)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "stages.a:") || strings.Contains(got, "stages.c:") {
		t.Errorf("a stage that trains, or has needs, was warned about:\n%s", got)
	}
}

// The files of an npy data section are the recipe's files: listed by Files,
// checked (at their keys' positions) before anything runs, and their keys'
// shapes (a number or a list for normalize) validated by the schema.
func TestNPYDataFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"x.npy", "y.npy", "yt.npy"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	recipe := "version: 1\nname: t\nmodel: {arch: mlp, inputs: 32}\n" +
		"data:\n  dataset: npy\n  train: {x: x.npy, y: y.npy}\n  test: {x: xt.npy, y: yt.npy}\n  normalize: {mean: [0.5, 0.5], std: 0.25}\n" +
		"stages: {a: {type: xform}}\n"
	path := filepath.Join(dir, "r.yaml")
	os.WriteFile(path, []byte(recipe), 0o644)
	_, err := Load(path, reg, Options{CheckFiles: true})
	if err == nil || !strings.Contains(err.Error(), "r.yaml:7:13: data.test.x: "+filepath.Join(dir, "xt.npy")+": no such file") {
		t.Fatalf("got %v", err)
	}
	r, err := Load(path, reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range r.Files() {
		keys = append(keys, f.Key+"="+filepath.Base(f.Path))
	}
	if want := []string{"data.train.x=x.npy", "data.train.y=y.npy", "data.test.x=xt.npy", "data.test.y=yt.npy"}; !slices.Equal(keys, want) {
		t.Fatalf("Files: %v; want %v", keys, want)
	}
	for _, tc := range []struct{ data, want string }{
		{"{dataset: npy, train: {x: a, y: b}, test: {x: c, y: d}, normalize: {mean: [0.5, x], std: 1}}", "data.normalize.mean"},
		{"{dataset: npy, train: {x: a, y: b}, test: {x: c, y: d}, normalize: {std: [1, 0]}}", "data.normalize.std"},
		{"{dataset: npy, train: {x: a}, test: {x: c, y: d}}", "data.train.y: missing"},
		{"{dataset: mnist, layout: rows}", "data.layout"},
	} {
		_, err := Parse("r.yaml", []byte("version: 1\nname: t\nmodel: {arch: mlp}\ndata: "+tc.data+"\nstages: {a: {type: xform}}\n"), reg, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v; want %q", tc.data, err, tc.want)
		}
	}
}

// TestMatrixStageBound: a sweep past MaxStages is an error at the matrix, or at
// the stage whose branches pass it, before its combinations are made (a few
// keys of a hundred values each made millions of stages and ran out of
// memory while validating); MaxStages itself is fine.
func TestMatrixStageBound(t *testing.T) {
	values := func(n int) string {
		v := make([]string, n)
		for i := range v {
			v[i] = fmt.Sprint(i)
		}
		return "[" + strings.Join(v, ", ") + "]"
	}
	for _, tc := range []struct{ name, stages, want string }{
		{"one matrix at the bound", "  a: {type: xform, matrix: {epochs: " + values(100) + ", amount: " + values(100) + "}}\n", ""},
		{"one matrix past it", "  a: {type: xform, matrix: {epochs: " + values(100) + ", amount: " + values(101) + "}}\n",
			"r.yaml:6:20: stages.a.matrix: at least 10100 combinations, more than 10000 stages"},
		{"keys multiplying past int", "  a: {type: xform, matrix: {epochs: " + values(1000) + ", amount: " + values(1000) + ", method: [a, b]}}\n",
			"stages.a.matrix: at least 1000000 combinations"},
		{"branches past it", "  a: {type: xform, matrix: {epochs: " + values(200) + "}}\n  b: {type: xform, needs: [a], matrix: {amount: " + values(60) + "}}\n",
			"r.yaml:7:3: stages.b: the branches it follows and its own matrix make more than 10000 stages"},
		{"two fan-outs past it", "  a: {type: xform, matrix: {epochs: " + values(5000) + "}}\n  b: {type: xform, matrix: {amount: " + values(3) + "}}\n  c: {type: teach, needs: [a], teacher: b}\n",
			"stages.c: the branches it follows and its own matrix make more than 10000 stages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parse(t, tc.stages, Options{})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Stages) != MaxStages {
					t.Fatalf("%d stages, want %d", len(r.Stages), MaxStages)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want %q", err, tc.want)
			}
		})
	}
}
