package workflow

import (
	"bytes"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/shrink-ml/shrink/pipeline"
)

// Paths inside the container.
const (
	// RecipeDir holds the recipe file, under its own name: relative paths in
	// the recipe resolve here.
	RecipeDir = "/work/recipe"
	// ScratchDir is an emptyDir volume: the run folder and the local store,
	// a cache of the shared one that lives as long as the pod.
	ScratchDir = "/work/scratch"
	// StageParam is the task parameter holding the stage's real id.
	StageParam = "stage"
)

// Options are what the workflow needs besides the recipe.
type Options struct {
	Image    string // the container image with shrink in it (see the Dockerfile)
	CacheDir string // the shared store, s3://BUCKET/PREFIX
	// RecipeFile names the recipe (its base name is kept) and Recipe holds its
	// bytes, run as they are: a checkpoint records the recipe's sha256, so the
	// same bytes give the same checkpoints as a local run.
	RecipeFile string
	Recipe     []byte
	Sets       []string // --set overrides, given to every task
	Env        []string // KEY=VALUE in every container: SHRINK_ recipe overrides, AWS_ENDPOINT_URL, ...
	// Secret is a Secret whose keys become environment variables (optional in
	// the pod: without it, credentials come from the pod's role).
	Secret         string
	ServiceAccount string
	Retries        int // retries of a failed task
	Parallelism    int // pods at once; 0 for no limit
}

// Argo builds the Workflow that runs the recipe one stage per task: a DAG with
// a task per expanded stage, each running
//
//	shrink run RECIPE --only STAGE --cache-dir s3://... --run-dir /work/scratch/run
//
// in the image. A task fetches its inputs from the store and publishes its
// output there; a task whose result is published already reports it cached, so
// resubmitting the workflow, or retrying a task, repeats no finished work.
func Argo(r *pipeline.Recipe, opt Options) (*Workflow, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	names, err := TaskNames(r.StageIDs())
	if err != nil {
		return nil, err
	}
	w := &Workflow{
		APIVersion: "argoproj.io/v1alpha1",
		Kind:       "Workflow",
		Metadata:   metadata(r),
		Spec: Spec{
			Entrypoint: "main", Parallelism: opt.Parallelism, ServiceAccountName: opt.ServiceAccount,
			Volumes: []Volume{{Name: "scratch", EmptyDir: &struct{}{}}},
		},
	}
	dag := &DAG{}
	templates := map[pipeline.Resources]string{}
	var stageTemplates []Template
	for _, s := range r.Stages {
		tmpl, ok := templates[s.Resources]
		if !ok {
			t, err := opt.stageTemplate(s, len(templates))
			if err != nil {
				return nil, err
			}
			tmpl, templates[s.Resources] = t.Name, t.Name
			stageTemplates = append(stageTemplates, t)
		}
		var deps []string
		for _, d := range s.Deps() {
			if !slices.Contains(deps, names[d]) {
				deps = append(deps, names[d])
			}
		}
		dag.Tasks = append(dag.Tasks, Task{
			Name: names[s.ID], Template: tmpl, Dependencies: deps,
			Arguments: Arguments{Parameters: []Parameter{{Name: StageParam, Value: s.ID}}},
		})
	}
	w.Spec.Templates = append([]Template{{Name: "main", DAG: dag}}, stageTemplates...)
	return w, nil
}

func (opt *Options) check() error {
	switch {
	case opt.Image == "":
		return fmt.Errorf("--image is required: the image holding shrink (see the Dockerfile)")
	case !strings.HasPrefix(opt.CacheDir, "s3://"):
		return fmt.Errorf("--cache-dir must be the store every task shares, s3://BUCKET/PREFIX, not %q", opt.CacheDir)
	case bytes.Contains(opt.Recipe, []byte("{{")):
		return fmt.Errorf("the recipe contains '{{', which Argo would read as a template expression: remove it")
	}
	for _, s := range opt.Sets {
		if strings.Contains(s, "{{") {
			return fmt.Errorf("--set %s contains '{{', which Argo would read as a template expression", s)
		}
	}
	return nil
}

// stageTemplate is the container template for stages with s's resources; the
// i-th distinct set of resources gets the i-th template.
func (opt *Options) stageTemplate(s *pipeline.Stage, i int) (Template, error) {
	name := "stage"
	if i > 0 {
		name = "stage-" + strconv.Itoa(i)
	}
	recipe := path.Join(RecipeDir, filepath.Base(opt.RecipeFile))
	args := []string{"run", recipe, "--only", "{{inputs.parameters." + StageParam + "}}",
		"--cache-dir", opt.CacheDir, "--run-dir", path.Join(ScratchDir, "run")}
	for _, kv := range opt.Sets {
		args = append(args, "--set", kv)
	}
	c := &Container{
		Image: opt.Image, Command: []string{"shrink"}, Args: args,
		VolumeMounts: []VolumeMount{{Name: "scratch", MountPath: ScratchDir}},
	}
	for _, kv := range opt.Env {
		k, v, _ := strings.Cut(kv, "=")
		c.Env = append(c.Env, EnvVar{Name: k, Value: v})
	}
	if opt.Secret != "" {
		c.EnvFrom = []EnvFrom{{SecretRef: &SecretRef{Name: opt.Secret, Optional: true}}}
	}
	req := map[string]string{}
	for _, q := range []struct{ key, value string }{{"cpu", s.Resources.CPU}, {"memory", s.Resources.Memory}} {
		if q.value == "" {
			continue
		}
		if !quantity.MatchString(q.value) {
			return Template{}, fmt.Errorf("stage %s: resources.%s %q is not a Kubernetes quantity (e.g. 2, 500m, 4Gi)", s.ID, q.key, q.value)
		}
		req[q.key] = q.value
	}
	if len(req) > 0 {
		c.Resources = &Resources{Requests: req}
	}
	return Template{
		Name:   name,
		Inputs: &Inputs{Parameters: []Parameter{{Name: StageParam}}, Artifacts: []Artifact{{Name: "recipe", Path: recipe, Raw: &RawArtifact{Data: string(opt.Recipe)}}}},
		// Exit status 2 is an invalid recipe or bad usage: retrying cannot help.
		// Anything else (a lost node, an eviction, the store unreachable) may pass.
		RetryStrategy: &RetryStrategy{
			Limit: strconv.Itoa(opt.Retries), RetryPolicy: "Always",
			Expression: `lastRetry.status == "Error" || asInt(lastRetry.exitCode) != 2`,
			Backoff:    &Backoff{Duration: "30s", Factor: "2", MaxDuration: "1h"},
		},
		Container: c,
	}, nil
}

// quantity is a Kubernetes resource quantity: a number with an SI or binary
// suffix or an exponent.
var quantity = regexp.MustCompile(pipeline.QuantityPattern)

// labelValue is a valid Kubernetes label value.
var labelValue = regexp.MustCompile(`^([a-zA-Z0-9]([-a-zA-Z0-9_.]{0,61}[a-zA-Z0-9])?)?$`)

func metadata(r *pipeline.Recipe) Metadata {
	m := Metadata{
		GenerateName: sanitize(r.Name) + "-",
		Labels:       map[string]string{"app.kubernetes.io/name": "shrink"},
		Annotations:  map[string]string{"shrink/recipe": r.Name, "shrink/recipe-sha256": r.SHA256},
	}
	if len(m.GenerateName) > 40 { // Argo appends a suffix, and pod names more
		m.GenerateName = strings.TrimRight(m.GenerateName[:39], "-") + "-"
	}
	if labelValue.MatchString(r.Name) {
		m.Labels["shrink/recipe"] = r.Name
	}
	return m
}

// Marshal writes the workflow as YAML, after a comment saying where it came from.
func (w *Workflow) Marshal(source string) ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Written by shrink export-workflow from %s: one task per stage.\n# Submit it with: argo submit FILE (see docs/DISTRIBUTED.md)\n", source)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Parse reads a workflow back.
func Parse(b []byte) (*Workflow, error) {
	var w Workflow
	if err := yaml.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// StageDeps reads back, from a workflow Argo built, each task's stage id and
// the stage ids it depends on.
func (w *Workflow) StageDeps() (map[string][]string, error) {
	var dag *DAG
	for _, t := range w.Spec.Templates {
		if t.Name == w.Spec.Entrypoint {
			dag = t.DAG
		}
	}
	if dag == nil {
		return nil, fmt.Errorf("no DAG template %q", w.Spec.Entrypoint)
	}
	ids := map[string]string{}
	for _, t := range dag.Tasks {
		for _, p := range t.Arguments.Parameters {
			if p.Name == StageParam {
				ids[t.Name] = p.Value
			}
		}
		if ids[t.Name] == "" {
			return nil, fmt.Errorf("task %s has no %s parameter", t.Name, StageParam)
		}
	}
	deps := map[string][]string{}
	for _, t := range dag.Tasks {
		deps[ids[t.Name]] = []string{}
		for _, d := range t.Dependencies {
			if ids[d] == "" {
				return nil, fmt.Errorf("task %s depends on %s, which is no task", t.Name, d)
			}
			deps[ids[t.Name]] = append(deps[ids[t.Name]], ids[d])
		}
	}
	return deps, nil
}
