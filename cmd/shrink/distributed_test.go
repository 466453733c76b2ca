package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/internal/s3test"
	"github.com/shrink-ml/shrink/workflow"
)

// TestDistributedArgo plays the cluster: it exports the branches recipe as an
// Argo Workflow, then runs each task's container command as Argo would, as a
// separate shrink process in a fresh scratch folder (a pod), on two workers
// that take tasks as the workflow's dependencies release them, against a real
// S3 server. Both workers first race on the same stage. Every checkpoint must
// equal, byte for byte, the one a local `shrink run` makes.
func TestDistributedArgo(t *testing.T) {
	srv := s3test.Start(t)
	shrink, err := exec.LookPath("shrink") // this test binary, as TestMain set it up
	if err != nil {
		t.Fatal(err)
	}
	recipeFile := "../../testdata/distributed/branches.yaml"
	env := append(os.Environ(), srv.Env()...)
	out, _ := runShrink(t, shrink, env, "export-workflow", recipeFile, "--engine", "argo", "--image", "shrink:test", "--cache-dir", srv.URL("dist"))
	if t.Failed() {
		t.FailNow()
	}
	w, err := workflow.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	cl := newCluster(t, shrink, env, w)

	// Two pods race on the first stage: one result, which both report.
	first := cl.tasks[0]
	var wg sync.WaitGroup
	raced := make([]string, 2)
	for i := range raced {
		wg.Add(1)
		go func() { defer wg.Done(); raced[i] = cl.run(first) }()
	}
	wg.Wait()
	a, b := stageRecord(t, raced[0], first.stage), stageRecord(t, raced[1], first.stage)
	if a["sha256"] != b["sha256"] || a["key"] != b["key"] || !sameJSON(a["metrics"], b["metrics"]) {
		t.Fatalf("the racing workers report different results for %s:\n%v\n%v", first.stage, a, b)
	}
	t.Logf("the race on %s: %s and %s, one result", first.stage, a["status"], b["status"])
	cl.finished(first, raced[0])

	cl.schedule(2)
	if entries := srv.Objects(t, "dist/entries/"); len(entries) != len(cl.tasks) {
		t.Fatalf("the store holds %d entries for %d stages: %v", len(entries), len(cl.tasks), entries)
	}

	// A task run again (a retry, a resubmitted workflow) finds its result.
	last := cl.tasks[len(cl.tasks)-1]
	stdout := runTask(t, cl, last, t.TempDir())
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(last.stage) + `\s+cached`).Match(stdout) {
		t.Fatalf("rerunning %s did not report it cached:\n%s", last.stage, stdout)
	}

	// The same recipe run locally, in one process.
	local := filepath.Join(t.TempDir(), "local")
	runShrink(t, shrink, os.Environ(), "run", recipeFile, "--run-dir", local, "-q")
	for _, task := range cl.tasks {
		want := stageRecord(t, local, task.stage)
		got := stageRecord(t, cl.runDir[task.name], task.stage)
		if task != first && got["status"] != "ran" {
			t.Errorf("%s: %v in its pod, want ran: each stage runs once, in its own task", task.stage, got["status"])
		}
		if got["sha256"] != want["sha256"] || got["key"] != want["key"] {
			t.Errorf("%s: distributed checkpoint %.12s (key %.12s), local %.12s (key %.12s)", task.stage, got["sha256"], got["key"], want["sha256"], want["key"])
		}
		folder, _ := got["folder"].(string)
		if sum, err := checkpoint.Digest(filepath.Join(cl.runDir[task.name], folder, "model.safetensors")); err != nil || sum != want["sha256"] {
			t.Errorf("%s: the worker's checkpoint file has sha256 %.12s (%v), the local run's %.12s", task.stage, sum, err, want["sha256"])
		}
	}
	t.Logf("%d tasks on 2 workers, at most %d at once", len(cl.tasks), cl.maxBusy)
}

// task is one DAG task with what its pod would run.
type task struct {
	name, stage string
	deps        []string
	tmpl        workflow.Template
}

// cluster runs a workflow's tasks as processes.
type cluster struct {
	t     *testing.T
	bin   string
	env   []string
	tasks []*task

	mu      sync.Mutex
	done    map[string]bool
	runDir  map[string]string // task -> the run folder of the pod that ran it
	busy    int
	maxBusy int
}

func newCluster(t *testing.T, bin string, env []string, w *workflow.Workflow) *cluster {
	templates := map[string]workflow.Template{}
	for _, tm := range w.Spec.Templates {
		templates[tm.Name] = tm
	}
	cl := &cluster{t: t, bin: bin, env: env, done: map[string]bool{}, runDir: map[string]string{}}
	for _, tk := range templates[w.Spec.Entrypoint].DAG.Tasks {
		cl.tasks = append(cl.tasks, &task{name: tk.Name, stage: tk.Arguments.Parameters[0].Value, deps: tk.Dependencies, tmpl: templates[tk.Template]})
	}
	return cl
}

// run runs a task in a fresh scratch folder and returns its run folder.
func (cl *cluster) run(tk *task) string {
	pod := cl.t.TempDir()
	runTask(cl.t, cl, tk, pod)
	return filepath.Join(pod, "scratch", "run")
}

func (cl *cluster) finished(tk *task, runDir string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.done[tk.name], cl.runDir[tk.name] = true, runDir
}

// schedule runs the tasks not done on n workers, each task once its
// dependencies are done, as Argo's DAG does.
func (cl *cluster) schedule(n int) {
	cond := sync.NewCond(&cl.mu)
	started := map[string]bool{}
	for name := range cl.done {
		started[name] = true
	}
	next := func() *task { // with mu held; nil when everything started
		for {
			if len(started) == len(cl.tasks) || cl.t.Failed() {
				return nil
			}
			for _, tk := range cl.tasks {
				if !started[tk.name] && !slices.ContainsFunc(tk.deps, func(d string) bool { return !cl.done[d] }) {
					started[tk.name] = true
					return tk
				}
			}
			cond.Wait()
		}
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cl.mu.Lock()
				tk := next()
				if tk != nil {
					cl.busy++
					cl.maxBusy = max(cl.maxBusy, cl.busy)
				}
				cl.mu.Unlock()
				if tk == nil {
					return
				}
				dir := cl.run(tk)
				cl.finished(tk, dir)
				cl.mu.Lock()
				cl.busy--
				cond.Broadcast()
				cl.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// runTask runs the task's container command as its pod would, with the
// pod's paths under pod: the recipe artifact written where the template puts
// it, the scratch volume, the container's environment.
func runTask(t *testing.T, cl *cluster, tk *task, pod string) []byte {
	local := func(p string) string {
		p = strings.ReplaceAll(p, workflow.RecipeDir, filepath.Join(pod, "recipe"))
		return strings.ReplaceAll(p, workflow.ScratchDir, filepath.Join(pod, "scratch"))
	}
	for _, a := range tk.tmpl.Inputs.Artifacts {
		path := local(a.Path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Error(err)
			return nil
		}
		if err := os.WriteFile(path, []byte(a.Raw.Data), 0o644); err != nil {
			t.Error(err)
			return nil
		}
	}
	c := tk.tmpl.Container
	if c.Command[0] != "shrink" {
		t.Errorf("the container runs %v, not shrink", c.Command)
		return nil
	}
	var args []string
	for _, a := range c.Args {
		args = append(args, local(strings.ReplaceAll(a, "{{inputs.parameters."+workflow.StageParam+"}}", tk.stage)))
	}
	env := slices.Clone(cl.env)
	for _, e := range c.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	out, _ := runShrink(t, cl.bin, env, append(args, "-q")...)
	return out
}

// runShrink runs shrink and fails the test unless it exits 0.
func runShrink(t *testing.T, bin string, env []string, args ...string) ([]byte, []byte) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("shrink %s: %v\n%s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes(), stderr.Bytes()
}

// stageRecord is a stage's record in a run folder's run.json.
func stageRecord(t *testing.T, runDir, id string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Stages []map[string]any `json:"stages"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, s := range m.Stages {
		if s["id"] == id {
			return s
		}
	}
	t.Fatalf("%s/run.json has no stage %s", runDir, id)
	return nil
}

func sameJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
