package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"plan", []string{"plan", recipe}, exitOK, ""},
		{"from unknown", []string{"plan", recipe, "--from", "nope"}, exitInvalid, "--from nope: no such stage (stages: a, b)"},
		{"only unknown", []string{"run", recipe, "--only", "nope"}, exitInvalid, "--only nope: no such stage"},
		{"bad set", []string{"plan", recipe, "--set", "stages.a.epochs=-1"}, exitInvalid, "--set stages.a.epochs"},
		{"stage fails", []string{"run", diverges, "-q"}, exitFailed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runDir := filepath.Join(t.TempDir(), "run")
			var stdout, stderr bytes.Buffer
			code := Main(append(tc.args, "--run-dir", runDir), nil, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
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
