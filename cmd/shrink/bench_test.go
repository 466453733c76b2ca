package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/model"
)

// shrink bench times a checkpoint at batch 1 and --batch, and names the
// kernels: a layer pruned to 5% runs sparse at batch 1.
func TestBench(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := model.MustNew(arch.Spec{Arch: "mlp", Inputs: 40, Hidden: arch.Widths{30}, Classes: 3}, rng)
	w := m.Layer("fc1").Weights[0].Data
	for i := range w {
		if rng.Float64() >= 0.05 {
			w[i] = 0
		}
	}
	path := filepath.Join(t.TempDir(), "pruned.safetensors")
	if _, err := m.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"bench", path, "--batch", "8", "--time", "20ms", "--format", "json"}, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var res benchResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if res.Latency.Batch != 1 || res.Throughput.Batch != 8 || res.Latency.Median <= 0 || res.Throughput.Throughput <= 0 || res.Latency.Calls < 3 {
		t.Errorf("timings %+v and %+v", res.Latency, res.Throughput)
	}
	kernels := map[string]string{}
	for _, l := range res.Layers {
		kernels[l.Name] = l.Batch1
	}
	if kernels["fc1"] != "sparse" || kernels["fc2"] != "dense" || kernels["relu1"] != "" {
		t.Errorf("kernels at batch 1: %v", kernels)
	}
	stdout.Reset()
	if code := Main([]string{"bench", path, "--time", "10ms"}, nil, &stdout, &stderr); code != exitOK || !bytes.Contains(stdout.Bytes(), []byte("latency, batch 1")) {
		t.Errorf("text output: exit %d\n%s", code, stdout.String())
	}
	if code := Main([]string{"bench", path, "--batch", "0"}, nil, &stdout, &stderr); code != exitInvalid {
		t.Errorf("--batch 0: exit %d, want %d", code, exitInvalid)
	}
	// A plain state_dict (no arch metadata) without --recipe: the error says
	// to give one.
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	delete(f.Metadata, "arch")
	plain := filepath.Join(t.TempDir(), "plain.safetensors")
	if _, err := checkpoint.WriteFile(plain, f); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := Main([]string{"bench", plain, "--time", "10ms"}, nil, &stdout, &stderr); code != exitInvalid || !bytes.Contains(stderr.Bytes(), []byte("give --recipe RECIPE")) {
		t.Errorf("a plain state_dict without --recipe: exit %d, want %d, and a hint to give --recipe in %q", code, exitInvalid, stderr.String())
	}
	// Nor can export, which has no --recipe, read its architecture: it says
	// how to make a shrink checkpoint of it.
	stderr.Reset()
	if code := Main([]string{"export", plain, "--format", "onnx", filepath.Join(t.TempDir(), "plain.onnx")}, nil, &stdout, &stderr); code != exitInvalid || !bytes.Contains(stderr.Bytes(), []byte("onnx export needs a shrink checkpoint; make one")) {
		t.Errorf("export of a plain state_dict: exit %d, want %d, and how to make a checkpoint in %q", code, exitInvalid, stderr.String())
	}
}
