package workflow_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
	_ "github.com/shrink-ml/shrink/stages/all"
	"github.com/shrink-ml/shrink/workflow"
)

var update = flag.Bool("update", false, "rewrite the golden workflow")

// branchRecipes are the recipes with branches the export is checked on; the
// shipped sweep is checked when it is there.
var branchRecipes = []string{"../testdata/distributed/branches.yaml", "../recipes/sweep-select.yaml", "../recipes/quickstart.yaml"}

func load(t *testing.T, file string) (*pipeline.Recipe, []byte) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.Parse(file, src, stages.Default, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r, src
}

func options(file string, src []byte) workflow.Options {
	return workflow.Options{Image: "ghcr.io/shrink-ml/shrink:test", CacheDir: "s3://shrink-cache/runs",
		RecipeFile: file, Recipe: src, Retries: 2, Secret: "shrink-s3"}
}

func argoSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/argo-workflows.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("argo.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("argo.json#/definitions/io.argoproj.workflow.v1alpha1.Workflow")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// asJSON turns YAML into the values JSON decoding gives, as the schema expects.
func asJSON(t *testing.T, y []byte) any {
	t.Helper()
	var tree any
	if err := yaml.Unmarshal(y, &tree); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// The exported workflow is a valid Argo Workflow, and its tasks are the
// recipe's DAG: one per expanded stage, with the stage's edges as dependencies.
func TestArgoValidAndFaithful(t *testing.T) {
	schema := argoSchema(t)
	for _, file := range branchRecipes {
		t.Run(filepath.Base(file), func(t *testing.T) {
			if _, err := os.Stat(file); err != nil {
				t.Skipf("%s: not in this tree", file)
			}
			r, src := load(t, file)
			w, err := workflow.Argo(r, options(file, src))
			if err != nil {
				t.Fatal(err)
			}
			out, err := w.Marshal(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(asJSON(t, out)); err != nil {
				t.Fatalf("the workflow does not validate against Argo's schema:\n%v\n%s", err, out)
			}
			back, err := workflow.Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			got, err := back.StageDeps()
			if err != nil {
				t.Fatal(err)
			}
			want := map[string][]string{}
			for _, s := range r.Stages {
				want[s.ID] = []string{}
				for _, d := range s.Deps() {
					if !slices.Contains(want[s.ID], d) {
						want[s.ID] = append(want[s.ID], d)
					}
				}
			}
			if !sameGraph(got, want) {
				t.Fatalf("task dependencies differ from the recipe's DAG:\ngot  %v\nwant %v", got, want)
			}
			checkTemplates(t, r, back, src)
		})
	}
}

func sameGraph(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			return false
		}
		va, vb = slices.Sorted(slices.Values(va)), slices.Sorted(slices.Values(vb))
		if !slices.Equal(va, vb) {
			return false
		}
	}
	return true
}

// checkTemplates checks each task's names, command, recipe and requests.
func checkTemplates(t *testing.T, r *pipeline.Recipe, w *workflow.Workflow, src []byte) {
	t.Helper()
	templates := map[string]workflow.Template{}
	for _, tm := range w.Spec.Templates {
		templates[tm.Name] = tm
	}
	tasks := templates[w.Spec.Entrypoint].DAG.Tasks
	for i, task := range tasks {
		s := r.Stages[i]
		if !dnsLabel.MatchString(task.Name) {
			t.Errorf("task name %q (stage %s) is not a DNS-1123 label", task.Name, s.ID)
		}
		tm := templates[task.Template]
		c := tm.Container
		if c == nil || tm.RetryStrategy == nil || tm.RetryStrategy.Limit != "2" {
			t.Fatalf("task %s: template %s lacks a container or a retry strategy", task.Name, task.Template)
		}
		if got := strings.Join(c.Args[:4], " "); got != "run /work/recipe/"+filepath.Base(r.File)+" --only {{inputs.parameters.stage}}" {
			t.Errorf("task %s runs %q", task.Name, got)
		}
		if a := tm.Inputs.Artifacts[0]; a.Raw == nil || a.Raw.Data != string(src) || a.Path != c.Args[1] {
			t.Errorf("task %s: the recipe artifact is not the recipe file, byte for byte, at the path run reads", task.Name)
		}
		var got workflow.Resources
		if c.Resources != nil {
			got = *c.Resources
		}
		if got.Requests["cpu"] != s.Resources.CPU || got.Requests["memory"] != s.Resources.Memory {
			t.Errorf("task %s requests %v, the stage %+v", task.Name, got.Requests, s.Resources)
		}
	}
}

// The branches recipe's workflow, as a golden file a reviewer can read
// (go test ./workflow -update rewrites it).
func TestArgoGolden(t *testing.T) {
	file := "../testdata/distributed/branches.yaml"
	r, src := load(t, file)
	w, err := workflow.Argo(r, options("branches.yaml", src))
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.Marshal("branches.yaml")
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/branches.argo.yaml"
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./workflow -update writes it)", err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("the workflow differs from %s (go test ./workflow -update rewrites it):\n%s", golden, out)
	}
}

func TestArgoErrors(t *testing.T) {
	file := "../testdata/distributed/branches.yaml"
	r, src := load(t, file)
	for _, tc := range []struct {
		name string
		edit func(*workflow.Options, *pipeline.Recipe)
		want string
	}{
		{"no image", func(o *workflow.Options, _ *pipeline.Recipe) { o.Image = "" }, "--image is required"},
		{"local store", func(o *workflow.Options, _ *pipeline.Recipe) { o.CacheDir = "/shared/cache" }, "--cache-dir must be the store every task shares"},
		{"template braces", func(o *workflow.Options, _ *pipeline.Recipe) { o.Recipe = append(o.Recipe, "# {{x}}\n"...) }, "template expression"},
		{"bad quantity", func(_ *workflow.Options, r *pipeline.Recipe) { r.Stages[0].Resources.Memory = "lots" }, `stage train: resources.memory "lots" is not a Kubernetes quantity`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := options(file, slices.Clone(src))
			rr := *r
			rr.Stages = slices.Clone(r.Stages)
			s0 := *r.Stages[0]
			rr.Stages[0] = &s0
			tc.edit(&opt, &rr)
			if _, err := workflow.Argo(&rr, opt); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTaskNames(t *testing.T) {
	long := strings.Repeat("x", 70)
	names, err := workflow.TaskNames([]string{"train", "prune[amount=0.5]", "int8_ptq", "int8-ptq", "_", long, "qat[prune.epochs=1,qat.epochs=2]"})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"train": "train", "prune[amount=0.5]": "prune-amount-0-5", "int8-ptq": "int8-ptq", "_": "stage",
		"qat[prune.epochs=1,qat.epochs=2]": "qat-prune-epochs-1-qat-epochs-2",
	} {
		if names[id] != want {
			t.Errorf("%s -> %s, want %s", id, names[id], want)
		}
	}
	if n := names["int8_ptq"]; !strings.HasPrefix(n, "int8-ptq-") || len(n) != len("int8-ptq-")+8 {
		t.Errorf("int8_ptq -> %s: it collides with int8-ptq and needs a hash suffix", n)
	}
	for id, n := range names {
		if !dnsLabel.MatchString(n) {
			t.Errorf("%s -> %q: not a DNS-1123 label", id, n)
		}
	}
}

// The schema check has teeth: Argo types counts as strings and lists as lists.
func TestArgoSchemaRejectsMistakes(t *testing.T) {
	schema := argoSchema(t)
	file := "../testdata/distributed/branches.yaml"
	r, src := load(t, file)
	w, err := workflow.Argo(r, options(file, src))
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(map[string]any){
		"integer retry limit": func(m map[string]any) { template(m, 1)["retryStrategy"].(map[string]any)["limit"] = json.Number("2") },
		"dependencies as a string": func(m map[string]any) {
			template(m, 0)["dag"].(map[string]any)["tasks"].([]any)[1].(map[string]any)["dependencies"] = "train"
		},
		"no spec": func(m map[string]any) { delete(m, "spec") },
	} {
		tree := asJSON(t, mustJSON(t, asJSON(t, out))).(map[string]any)
		edit(tree)
		err := schema.Validate(any(tree))
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: the schema accepted it (%v)", name, err)
		}
	}
}

func template(m map[string]any, i int) map[string]any {
	return m["spec"].(map[string]any)["templates"].([]any)[i].(map[string]any)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
