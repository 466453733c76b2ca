package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/model"
)

// TestExitCodes checks the contract's exit codes: 0 done, 1 a stage failed,
// 2 bad recipe or bad usage (and then nothing is written).
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	recipe := filepath.Join(dir, "r.yaml")
	diverges := filepath.Join(dir, "diverges.yaml")
	const base = "version: 1\nname: codes\nseed: 3\nmodel: {arch: mlp, inputs: 4, hidden: [8], classes: 2}\n" +
		"data: {dataset: synthetic, features: 4, classes: 2, samples: 100, batch_size: 20}\nstages:\n"
	write(t, recipe, base+"  a: {type: train, epochs: 1}\n  b: {type: train, needs: [a], epochs: 1}\n")
	write(t, diverges, base+"  a: {type: train, epochs: 1, optimizer: {name: sgd, lr: 1.0e+30}}\n  b: {type: train, needs: [a], epochs: 1}\n")
	tiny, err := filepath.Abs("../../testdata/data")
	if err != nil {
		t.Fatal(err)
	}
	idxTooWide := filepath.Join(dir, "idx.yaml")
	write(t, idxTooWide, "version: 1\nname: idx\nmodel: {arch: mlp, inputs: 100, hidden: [8]}\n"+
		"data: {dataset: idx, train_images: "+tiny+"/tiny-train-images-idx3-ubyte.gz, train_labels: "+tiny+"/tiny-train-labels-idx1-ubyte.gz, "+
		"test_images: "+tiny+"/tiny-t10k-images-idx3-ubyte, test_labels: "+tiny+"/tiny-t10k-labels-idx1-ubyte}\n"+
		"stages:\n  a: {type: train, epochs: 1}\n")
	idxFewClasses := filepath.Join(dir, "idx4.yaml")
	write(t, idxFewClasses, strings.Replace(string(mustRead(t, idxTooWide)), "inputs: 100, hidden: [8]", "inputs: 784, hidden: [8], classes: 4", 1))
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		output string // in stdout or stderr
	}{
		{"plan", []string{"plan", recipe}, exitOK, ""},
		{"from unknown", []string{"plan", recipe, "--from", "nope"}, exitInvalid, "--from nope: no such stage (stages: a, b)"},
		{"only unknown", []string{"run", recipe, "--only", "nope"}, exitInvalid, "--only nope: no such stage"},
		{"bad set", []string{"plan", recipe, "--set", "stages.a.epochs=-1"}, exitInvalid, "--set stages.a.epochs"},
		{"stage fails", []string{"run", diverges, "-q"}, exitFailed, "training diverged"},
		{"missing file", []string{"run", recipe, "--set", "model.checkpoint=nope.safetensors"}, exitInvalid, "model.checkpoint: " + filepath.Join(dir, "nope.safetensors") + ": no such file"},
		{"bad cache dir", []string{"run", recipe, "--cache-dir", "ftp://host/x"}, exitInvalid, `unsupported store "ftp://"`},
		// IDX images are measured only when read: a stage failure, not a panic.
		{"idx too wide", []string{"run", idxTooWide, "-q"}, exitInvalid, "data.train_images: the data has 784 input features but the model takes 100 (model.inputs)"},
		// The first MNIST digits include a 5: a 4-class model cannot take it.
		{"idx labels", []string{"run", idxFewClasses, "-q"}, exitFailed, "label is 5 but the model has 4 outputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runDir := filepath.Join(t.TempDir(), "run")
			var stdout, stderr bytes.Buffer
			code := Main(append(tc.args, "--run-dir", runDir), nil, &stdout, &stderr)
			if out := stdout.String() + stderr.String(); code != tc.code || !strings.Contains(out, tc.output) {
				t.Fatalf("exit %d, want %d and %q; output:\n%s", code, tc.code, tc.output, out)
			}
			if _, err := os.Stat(runDir); code == exitInvalid && err == nil {
				t.Errorf("exit 2 but %s was written", runDir)
			}
		})
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestExportWorkflowWarnsAboutLocalFiles: the workflow carries the recipe, not
// the files it names; the user is told which.
func TestExportWorkflowWarnsAboutLocalFiles(t *testing.T) {
	dir := t.TempDir()
	recipe := filepath.Join(dir, "r.yaml")
	write(t, recipe, "version: 1\nname: files\nmodel: {arch: mlp, inputs: 784, classes: 10, checkpoint: start.safetensors}\n"+
		"data: {dataset: mnist, path: mnist}\nstages:\n  a: {type: distill, teacher_checkpoint: teacher.safetensors, student: {hidden: [30]}}\n")
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"export-workflow", recipe, "--image", "shrink:1", "--cache-dir", "s3://bucket/p"}, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"start.safetensors (model.checkpoint)", "mnist (data.path)", "teacher.safetensors (stages.a.teacher_checkpoint)"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("warning lacks %q:\n%s", want, stderr.String())
		}
	}
	stderr.Reset()
	if Main([]string{"export-workflow", "../../recipes/quickstart.yaml", "--image", "shrink:1", "--cache-dir", "s3://bucket/p"}, nil, &stdout, &stderr); stderr.Len() > 0 {
		t.Errorf("the quickstart reads only what the image holds, but: %s", stderr.String())
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMissingRunFolder: every command that reads a run folder says the same
// thing about one that is not there, exits 2, and creates nothing.
func TestMissingRunFolder(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "runs", "nope")
	for _, args := range [][]string{
		{"report", missing},
		{"diff", missing, missing},
		{"gc", missing},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(args, nil, &stdout, &stderr)
		if code != exitInvalid || !strings.Contains(stderr.String(), missing+" is not a run folder (it has no run.json)") {
			t.Errorf("%v: exit %d: %s", args, code, stderr.String())
		}
		if _, err := os.Stat(missing); err == nil {
			t.Errorf("%v created %s", args, missing)
		}
	}
}

// TestCobraUsageErrors: cobra's own complaints (arguments, flags, commands)
// are bad usage too, pointing at the right --help.
func TestCobraUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "Run 'shrink run --help' for usage."},
		{[]string{"diff", "a"}, "accepts 2 arg(s), received 1"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"run", "--jobs"}, "flag needs an argument"},
		{[]string{"export-workflow", "../../recipes/quickstart.yaml"}, "--image is required"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(tc.args, nil, &stdout, &stderr); code != exitInvalid || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, want 2 and %q:\n%s", tc.args, code, tc.want, stderr.String())
		}
	}
}

func TestVersionFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"--version"}, nil, &stdout, &stderr); code != exitOK || !strings.HasPrefix(stdout.String(), "shrink ") {
		t.Fatalf("exit %d: %q %q", code, stdout.String(), stderr.String())
	}
}

// TestVersionLine: a build without version control information (go run) says
// how to get one instead of a bare "(devel)".
func TestVersionLine(t *testing.T) {
	for _, tc := range []struct{ v, rev, want string }{
		{"(devel)", "", "development build (no commit recorded: 'go run' omits it; build with 'go tool task build' or 'go install ./cmd/shrink')"},
		{"(devel)", "abc123+dirty", "development build abc123+dirty"},
		{"v0.3.0", "abc123", "v0.3.0 abc123"},
	} {
		if got := versionLine(tc.v, tc.rev); got != tc.want {
			t.Errorf("versionLine(%q, %q) = %q, want %q", tc.v, tc.rev, got, tc.want)
		}
	}
}

// TestEvalJSONSaysWhyNotFinite: JSON cannot hold a NaN loss; eval --format
// json says what it means instead of json's "unsupported value: NaN", and the
// text format prints it.
func TestEvalJSONSaysWhyNotFinite(t *testing.T) {
	dir := t.TempDir()
	recipe := filepath.Join(dir, "r.yaml")
	write(t, recipe, "version: 1\nname: nan\nmodel: {arch: mlp, inputs: 4, hidden: [8], classes: 2}\n"+
		"data: {dataset: synthetic, features: 4, classes: 2, samples: 20}\nstages:\n  a: {type: train}\n")
	m := model.MustNew(arch.Spec{Arch: "mlp", Inputs: 4, Hidden: []int{8}, Classes: 2}, rand.New(rand.NewPCG(1, 2)))
	for _, l := range m.WeightLayers() {
		for i := range l.Weights[0].Data {
			l.Weights[0].Data[i] = 3e38 // the logits overflow
		}
	}
	ckpt := filepath.Join(dir, "big.safetensors")
	if _, err := m.Save(ckpt, nil); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := Main([]string{"eval", ckpt, "--recipe", recipe, "--format", "json"}, nil, &stdout, &stderr)
	if want := "the loss over 4 samples is NaN: the model's outputs are not finite numbers (float32 overflowed), which JSON cannot hold"; code != exitFailed || !strings.Contains(stderr.String(), want) || stdout.Len() > 0 {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, stdout.String(), stderr.String(), exitFailed, want)
	}
	stdout.Reset()
	if code := Main([]string{"eval", ckpt, "--recipe", recipe}, nil, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "loss NaN  samples 4") {
		t.Errorf("text: exit %d, %q", code, stdout.String())
	}
}
