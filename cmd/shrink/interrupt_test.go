package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shrink-ml/shrink/runner"
)

// TestInterruptExits130: a run stopped by Ctrl-C (its context cancelled, as
// the first SIGINT does) exits 130, says how to resume, records the stage as
// interrupted, and plan then says where it will resume.
func TestInterruptExits130(t *testing.T) {
	dir := t.TempDir()
	recipe := filepath.Join(dir, "r.yaml")
	write(t, recipe, "version: 1\nname: intr\nseed: 3\nmodel: {arch: mlp, inputs: 32, hidden: [64], classes: 5}\n"+
		"data: {dataset: synthetic, features: 32, classes: 5, samples: 4000, batch_size: 16}\n"+
		"stages:\n  train: {type: train, epochs: 100000}\n")
	runDir := filepath.Join(dir, "run")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- mainContext(ctx, []string{"run", recipe, "--run-dir", runDir, "-q"}, nil, &stdout, &stderr)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m, _ := filepath.Glob(filepath.Join(runDir, ".shrink", "state", "*", "train.safetensors")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no epoch saved after 60 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	var code int
	select {
	case code = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not stop within 60 s of the interrupt")
	}
	if code != exitInterrupted || !strings.Contains(stderr.String(), "shrink: interrupted; run the same command again to resume") {
		t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitInterrupted, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "train  interrupted (run the same command again to resume after the last finished epoch)") {
		t.Errorf("the table does not say interrupted:\n%s", stdout.String())
	}
	man, err := runner.ReadManifest(runDir)
	if err != nil {
		t.Fatal(err)
	}
	if man.Status != "interrupted" || man.Stages[0].Status != "interrupted" {
		t.Errorf("run.json says %s, stage %s", man.Status, man.Stages[0].Status)
	}
	stdout.Reset()
	if code := Main([]string{"plan", recipe, "--run-dir", runDir}, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("plan: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "will resume after epoch ") {
		t.Errorf("plan does not say where it resumes:\n%s", stdout.String())
	}
	if _, err := os.Stat(filepath.Join(runDir, "train", "model.safetensors")); err == nil {
		t.Error("an interrupted stage has a checkpoint in its folder")
	}
}
