package pipeline

import (
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/data"
)

// TestStageDataMergesOverTheRecipes: a stage's data key replaces the keys it
// sets and keeps the recipe's others; stages without one use the recipe's.
func TestStageDataMergesOverTheRecipes(t *testing.T) {
	src := "version: 1\nname: t\nmodel: {arch: mlp, inputs: 784}\n" +
		"data: {dataset: mnist, batch_size: 64, shuffle: false}\n" +
		"stages:\n" +
		"  a: {type: xform}\n" +
		"  b: {type: xform, needs: [a], data: {dataset: fashion-mnist, eval_batch_size: 500}}\n" +
		"  c: {type: xform, needs: [b], matrix: {epochs: [1, 2]}, data: {batch_size: 32}}\n"
	r, err := Parse("r.yaml", []byte(src), reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := r.StageData(r.Stage("a")); d != r.Data || r.Stage("a").Data != nil {
		t.Fatalf("stage a has its own data %+v", d)
	}
	b := r.StageData(r.Stage("b"))
	if b.Dataset != data.KindFashionMNIST || b.BatchSize != 64 || b.EvalBatchSize != 500 || b.Shuffle || b.Normalize != nil {
		t.Fatalf("stage b's data %+v", b)
	}
	for _, id := range []string{"c[epochs=1]", "c[epochs=2]"} {
		c := r.StageData(r.Stage(id))
		if c.Dataset != data.KindMNIST || c.BatchSize != 32 {
			t.Fatalf("%s's data %+v (a stage's data merges over the recipe's, not over the stage it needs)", id, c)
		}
	}
	if r.Data.Dataset != data.KindMNIST || r.Data.BatchSize != 64 {
		t.Fatalf("the recipe's data changed: %+v", r.Data)
	}
	// Evaluation batches: eval_batch_size where written (by the stage or the
	// recipe), else the stage's batch_size, as EvalBatch does for the recipe.
	for id, want := range map[string]int{"a": 64, "b": 500, "c[epochs=1]": 32} {
		if got := r.StageEvalBatch(r.Stage(id)); got != want {
			t.Errorf("StageEvalBatch(%s) = %d, want %d", id, got, want)
		}
	}
	r, err = Parse("r.yaml", []byte(strings.Replace(src, "shuffle: false}", "shuffle: false, eval_batch_size: 200}", 1)), reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int{"a": 200, "b": 500, "c[epochs=1]": 200} {
		if got := r.StageEvalBatch(r.Stage(id)); got != want {
			t.Errorf("with the recipe's eval_batch_size 200: StageEvalBatch(%s) = %d, want %d", id, got, want)
		}
	}
}

// TestStageDataErrors: a stage's data is validated like the recipe's, errors
// at the stage's keys.
func TestStageDataErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data, stages, want string
	}{
		{"bad dataset", "data: {dataset: mnist}\n", "  a: {type: xform, data: {dataset: cifar}}\n",
			`r.yaml:6:36: stages.a.data.dataset: "cifar" is not one of`},
		{"unknown key", "data: {dataset: mnist}\n", "  a: {type: xform, data: {batchsize: 3}}\n",
			"stages.a.data"},
		{"features do not fit", "data: {dataset: mnist}\n", "  a: {type: xform, data: {dataset: synthetic, features: 5}}\n",
			"stages.a.data.features: the data has 5 input features but the model takes 784"},
		{"too many classes", "data: {dataset: mnist}\n", "  a: {type: xform, data: {dataset: synthetic, features: 784, classes: 12}}\n",
			"stages.a.data.classes: the data has 12 classes but the model has 10 outputs"},
		{"stage data stands in for a missing section", "", "  a: {type: xform, uses_data: true, data: {dataset: synthetic, features: 784}}\n", ""},
		{"one stage without any data", "", "  a: {type: xform, uses_data: true, data: {dataset: synthetic, features: 784}}\n  b: {type: xform, uses_data: true}\n",
			"stages.b: a xform stage with these settings trains or evaluates: add a data section"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "version: 1\nname: t\nmodel: {arch: mlp, inputs: 784}\n" + tc.data + "stages:\n" + tc.stages
			_, err := Parse("r.yaml", []byte(src), reg, Options{})
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestStageDataFilesAreChecked: files a stage's data names must exist, and
// are listed among the recipe's files.
func TestStageDataFilesAreChecked(t *testing.T) {
	src := "version: 1\nname: t\nmodel: {arch: mlp, inputs: 784}\ndata: {dataset: mnist}\nstages:\n" +
		"  a: {type: xform, data: {dataset: fashion-mnist, path: nowhere}}\n"
	_, err := Parse("r.yaml", []byte(src), reg, Options{CheckFiles: true})
	if err == nil || !strings.Contains(err.Error(), "stages.a.data.path") {
		t.Fatalf("error %v, want one at stages.a.data.path", err)
	}
	r, err := Parse("r.yaml", []byte(src), reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	files := r.Files()
	if len(files) != 1 || files[0].Key != "stages.a.data.path" || !strings.HasSuffix(files[0].Path, "nowhere") {
		t.Fatalf("files %+v", files)
	}
}
