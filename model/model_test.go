package model

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/data"
)

// TestPyTorchLogits loads models PyTorch made (testdata/torch/make_models.py) and
// reproduces PyTorch's logits on the inputs stored beside them.
func TestPyTorchLogits(t *testing.T) {
	for _, tc := range []struct {
		file string
		spec arch.Spec
	}{
		{"mlp.safetensors", arch.Spec{Arch: "mlp", Inputs: 784, Hidden: []int{300, 100}, Classes: 10}},
		{"lenet5.safetensors", arch.Spec{Arch: "lenet5", Classes: 10}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := checkpoint.ReadFile(filepath.Join("..", "testdata", "torch", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			x, _ := f.Get("x")
			want, _ := f.Get("logits")
			weights := &checkpoint.File{Metadata: map[string]string{}}
			for _, tn := range f.Tensors {
				if tn.Name != "x" && tn.Name != "logits" {
					weights.Tensors = append(weights.Tensors, tn)
				}
			}
			m, err := FromFile(weights, &tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			xs, _ := x.Float32s()
			ws, _ := want.Float32s()
			n := x.Shape[0]
			split := &data.Split{X: xs, Y: make([]int32, n), N: n, Features: len(xs) / n}
			got, err := Logits(context.Background(), m, split, n)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i := range ws {
				worst = max(worst, math.Abs(float64(got[i]-ws[i])))
			}
			if worst > 1e-5 {
				t.Fatalf("logits differ from PyTorch's by up to %g (tolerance 1e-5)", worst)
			}
			t.Logf("max |shrink - torch| = %.2g", worst)
		})
	}
}

func TestLoadReportsEveryMismatch(t *testing.T) {
	spec := arch.Spec{Arch: "mlp", Inputs: 4, Hidden: []int{3}, Classes: 2}
	m := MustNew(spec, rand.New(rand.NewPCG(1, 1)))
	f, err := m.ToFile(nil)
	if err != nil {
		t.Fatal(err)
	}
	// A PyTorch-style file: no metadata, one tensor missing, one extra, one reshaped.
	bad := &checkpoint.File{Metadata: map[string]string{}}
	for _, tn := range f.Tensors {
		switch tn.Name {
		case "fc1.bias":
			continue
		case "fc2.weight":
			tn = checkpoint.F32(tn.Name, []int{3, 2}, make([]float32, 6))
		}
		bad.Tensors = append(bad.Tensors, tn)
	}
	bad.Tensors = append(bad.Tensors, checkpoint.F32("fc9.weight", []int{1}, []float32{1}))
	_, err = FromFile(bad, &spec)
	if err == nil {
		t.Fatal("loaded a mismatched checkpoint")
	}
	for _, want := range []string{"missing: fc1.bias", "unexpected: fc9.weight", "fc2.weight is F32 [3 2], want F32 [2 3]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestInitializationMatchesPyTorch checks the bounds and the spread of nn.Linear's
// and nn.Conv2d's defaults: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
func TestInitializationMatchesPyTorch(t *testing.T) {
	m := MustNew(arch.Spec{Arch: "lenet5", Classes: 10}, rand.New(rand.NewPCG(7, 7)))
	for _, l := range m.WeightLayers() {
		bound := 1 / math.Sqrt(float64(l.FanIn()))
		for _, v := range [][]float32{l.Weights[0].Data, l.Bias().Data} {
			var sum, sq float64
			for _, x := range v {
				if math.Abs(float64(x)) > bound {
					t.Fatalf("%s: %g outside +-%g", l.Name, x, bound)
				}
				sum += float64(x)
				sq += float64(x) * float64(x)
			}
			n := float64(len(v))
			if n > 500 {
				if sd, want := math.Sqrt(sq/n-(sum/n)*(sum/n)), bound/math.Sqrt(3); math.Abs(sd-want) > 0.05*want {
					t.Errorf("%s: std %g, uniform's is %g", l.Name, sd, want)
				}
			}
		}
	}
	a := MustNew(arch.Spec{Arch: "mlp", Inputs: 5, Hidden: []int{4}, Classes: 3}, rand.New(rand.NewPCG(1, 2)))
	b := MustNew(arch.Spec{Arch: "mlp", Inputs: 5, Hidden: []int{4}, Classes: 3}, rand.New(rand.NewPCG(1, 2)))
	if a.WeightLayers()[0].Weights[0].Data[3] != b.WeightLayers()[0].Weights[0].Data[3] {
		t.Fatal("the same seed gave different weights")
	}
}

// TestGradients compares the graph's gradients with central finite differences
// of its loss, for an MLP, a factored MLP and LeNet-5, in float64 arithmetic
// around float32 parameters.
func TestGradients(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec arch.Spec
		rank int
	}{
		{"mlp", arch.Spec{Arch: "mlp", Inputs: 6, Hidden: []int{5, 4}, Classes: 3}, 0},
		{"lenet5", arch.Spec{Arch: "lenet5", Classes: 4}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 3))
			m := MustNew(tc.spec, rng)
			const batch = 3
			net, err := Build(m, NetOptions{Batch: batch, Mode: ModeTrain})
			if err != nil {
				t.Fatal(err)
			}
			for i := range net.X {
				net.X[i] = float32(rng.NormFloat64())
			}
			copy(net.Labels, []float32{0, 2, 1})
			loss := func() float64 {
				if err := net.Run(); err != nil {
					t.Fatal(err)
				}
				return net.LastLoss().Loss
			}
			loss()
			checked := 0
			for _, p := range net.Params() {
				grad := append([]float32(nil), p.Grad()...)
				for k := 0; k < 4; k++ {
					i := rng.IntN(len(p.Data))
					old := p.Data[i]
					const h = 1e-2
					p.Data[i] = old + h
					up := loss()
					p.Data[i] = old - h
					down := loss()
					p.Data[i] = old
					num := (up - down) / (2 * h)
					if diff := math.Abs(num - float64(grad[i])); diff > 2e-3+0.05*math.Abs(num) {
						t.Errorf("%s[%d]: gradient %g, finite difference %g", p.Name, i, grad[i], num)
					}
					checked++
				}
				loss() // restore the gradients of the unperturbed weights
			}
			if checked < 16 {
				t.Fatalf("checked only %d entries", checked)
			}
		})
	}
}

func syntheticData(t *testing.T, features, classes int) *data.Dataset {
	t.Helper()
	cfg := data.DefaultConfig()
	cfg.Dataset, cfg.Features, cfg.Classes, cfg.Samples = data.KindSynthetic, features, classes, 600
	ds, err := data.Load(cfg, "", 5)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestTrainingLowersTheLoss(t *testing.T) {
	ds := syntheticData(t, 16, 4)
	m := MustNew(arch.Spec{Arch: "mlp", Inputs: 16, Hidden: []int{32}, Classes: 4}, rand.New(rand.NewPCG(1, 1)))
	before, err := Evaluate(context.Background(), m, ds.Test, 100)
	if err != nil {
		t.Fatal(err)
	}
	opt := TrainOptions{Epochs: 3, BatchSize: 32, Shuffle: true, Optimizer: DefaultOptimizer()}
	if err := Train(context.Background(), m, ds.Train, opt, rand.New(rand.NewPCG(2, 2))); err != nil {
		t.Fatal(err)
	}
	after, err := Evaluate(context.Background(), m, ds.Test, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !(after.Loss < before.Loss*0.7) || after.Accuracy < 0.8 {
		t.Fatalf("loss %g -> %g, accuracy %g -> %g", before.Loss, after.Loss, before.Accuracy, after.Accuracy)
	}
	sgd := OptimizerConfig{Name: "sgd", LR: 0.05, Momentum: 0.9, WeightDecay: 1e-4, LRDecay: 1}
	m2 := MustNew(arch.Spec{Arch: "mlp", Inputs: 16, Hidden: []int{32}, Classes: 4}, rand.New(rand.NewPCG(1, 1)))
	if err := Train(context.Background(), m2, ds.Train, TrainOptions{Epochs: 3, BatchSize: 32, Optimizer: sgd}, rand.New(rand.NewPCG(2, 2))); err != nil {
		t.Fatal(err)
	}
	if r, _ := Evaluate(context.Background(), m2, ds.Test, 100); r.Loss > before.Loss*0.7 {
		t.Fatalf("sgd: loss %g -> %g", before.Loss, r.Loss)
	}
}

// TestTrainingIsDeterministic: the same seed gives a byte-identical checkpoint.
func TestTrainingIsDeterministic(t *testing.T) {
	ds := syntheticData(t, 16, 4)
	run := func() []byte {
		m := MustNew(arch.Spec{Arch: "mlp", Inputs: 16, Hidden: []int{32}, Classes: 4}, rand.New(rand.NewPCG(1, 1)))
		opt := TrainOptions{Epochs: 2, BatchSize: 50, Shuffle: true, Optimizer: DefaultOptimizer()}
		if err := Train(context.Background(), m, ds.Train, opt, rand.New(rand.NewPCG(3, 3))); err != nil {
			t.Fatal(err)
		}
		f, _ := m.ToFile(nil)
		b, err := checkpoint.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(run(), run()) {
		t.Fatal("two identical trainings gave different checkpoints")
	}
}

func TestDivergenceStopsWithEpochAndBatch(t *testing.T) {
	ds := syntheticData(t, 16, 4)
	m := MustNew(arch.Spec{Arch: "mlp", Inputs: 16, Hidden: []int{32}, Classes: 4}, rand.New(rand.NewPCG(1, 1)))
	huge := OptimizerConfig{Name: "sgd", LR: 1e30, LRDecay: 1}
	err := Train(context.Background(), m, ds.Train, TrainOptions{Epochs: 2, BatchSize: 32, Optimizer: huge}, rand.New(rand.NewPCG(2, 2)))
	if err == nil || !strings.Contains(err.Error(), "epoch 1, batch") || !strings.Contains(err.Error(), "lower the learning rate") {
		t.Fatalf("want a divergence error naming epoch and batch, got %v", err)
	}
}

// A loss that is not finite before any update comes from the starting model
// or its inputs, not from the learning rate, and the error says so.
func TestNonFiniteStartNamesNotTheLearningRate(t *testing.T) {
	ds := syntheticData(t, 16, 4)
	m := MustNew(arch.Spec{Arch: "mlp", Inputs: 16, Hidden: []int{32}, Classes: 4}, rand.New(rand.NewPCG(1, 1)))
	for _, l := range m.WeightLayers() {
		for i := range l.Weights[0].Data {
			l.Weights[0].Data[i] = 3e38 // every logit overflows to +Inf
		}
	}
	err := Train(context.Background(), m, ds.Train, TrainOptions{Epochs: 1, BatchSize: 32, Optimizer: DefaultOptimizer()}, rand.New(rand.NewPCG(2, 2)))
	if err == nil || !strings.Contains(err.Error(), "epoch 1, batch 1: the loss is NaN before the first update, so not from the learning rate") ||
		strings.Contains(err.Error(), "lower the learning rate") {
		t.Fatalf("got %v; want the starting model blamed", err)
	}
}

func TestTrainingStopsOnCancel(t *testing.T) {
	ds := syntheticData(t, 16, 4)
	m := MustNew(arch.Spec{Arch: "mlp", Inputs: 16, Hidden: []int{32}, Classes: 4}, rand.New(rand.NewPCG(1, 1)))
	ctx, cancel := context.WithCancel(context.Background())
	batches := 0
	opt := TrainOptions{Epochs: 5, BatchSize: 8, Optimizer: DefaultOptimizer(), Progress: func(Progress) {
		if batches++; batches == 3 {
			cancel()
		}
	}}
	if err := Train(ctx, m, ds.Train, opt, rand.New(rand.NewPCG(2, 2))); err != context.Canceled || batches != 3 {
		t.Fatalf("err %v after %d batches; want context.Canceled after 3", err, batches)
	}
}

// A ResNet's every tensor round-trips through a checkpoint, batch norm's
// running statistics and num_batches_tracked (I64) included, and loading one
// with the wrong widths lists every mismatch in one error.
func TestResNetCheckpointRoundTrip(t *testing.T) {
	spec := arch.Spec{Arch: "resnet", Depth: 8, Width: 4, Input: arch.Shape{1, 8, 8}, Classes: 3}
	m := MustNew(spec, rand.New(rand.NewPCG(2, 3)))
	for i, l := range m.Layers {
		for _, b := range l.Buffers {
			for j := range b.Data {
				b.Data[j] = float32(i+j) / 7
			}
		}
		for _, c := range l.Counters {
			c.Value = int64(100 + i)
		}
	}
	path := filepath.Join(t.TempDir(), "r.safetensors")
	if _, err := m.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range m.Layers {
		b := back.Layers[i]
		for k, w := range slices.Concat(l.Weights, l.Params, l.Buffers) {
			got := slices.Concat(b.Weights, b.Params, b.Buffers)[k]
			if got.Name != w.Name || !slices.Equal(got.Data, w.Data) {
				t.Fatalf("%s did not round-trip", w.Name)
			}
		}
		for k, c := range l.Counters {
			if b.Counters[k].Name != c.Name || b.Counters[k].Value != c.Value {
				t.Fatalf("%s = %d after the round trip, want %d", c.Name, b.Counters[k].Value, c.Value)
			}
		}
	}
	if got := back.Layer("bn1").Counters[0].Value; got != 101 {
		t.Errorf("bn1.num_batches_tracked %d, want 101", got)
	}
	// The same file read as a wider network: every tensor of the mismatch named.
	wide := spec
	wide.Width = 8
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	delete(f.Metadata, "arch") // a plain state_dict: the recipe's spec decides
	_, err = FromFile(f, &wide)
	if err == nil {
		t.Fatal("a width-4 checkpoint loaded as width 8")
	}
	for _, want := range []string{"conv1.weight is F32 [4 1 3 3], want F32 [8 1 3 3]", "bn1.running_var is F32 [4], want F32 [8]", "fc.weight is F32 [3 16], want F32 [3 32]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
