package model

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
)

// TestMutualGradientsMatchSeparateNets checks the joint graph against two
// ordinary distillation nets: each side's gradients must equal those of a net
// trained alone with the other side's logits as its fixed teacher.
func TestMutualGradientsMatchSeparateNets(t *testing.T) {
	const batch = 5
	rng := rand.New(rand.NewPCG(3, 4))
	student := MustNew(arch.Spec{Arch: "mlp", Inputs: 6, Hidden: []int{4}, Classes: 3}, rng)
	peer := MustNew(arch.Spec{Arch: "mlp", Inputs: 6, Hidden: []int{7, 5}, Classes: 3}, rng)
	x := make([]float32, batch*6)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	labels := []float32{0, 2, 1, 1, Ignore} // a padding row counts for nothing
	loss := Loss{Distill: true, Temperature: 3, Alpha: 0.3}

	joint, err := buildMutual(student, peer, NetOptions{Batch: batch, Mode: ModeTrain, Loss: loss})
	if err != nil {
		t.Fatal(err)
	}
	copy(joint.X, x)
	copy(joint.Labels, labels)
	if err := joint.Run(); err != nil {
		t.Fatal(err)
	}
	if got, want := len(joint.Params()), 4+6; got != want {
		t.Fatalf("joint net has %d parameters, want %d (both models')", got, want)
	}

	for _, side := range []struct {
		name       string
		own, other *Model
		params     []*Param
		jointLoss  LossValue
	}{
		{"student", student, peer, joint.Params()[:4], joint.LastLoss()},
		{"peer", peer, student, joint.Params()[4:], joint.PeerLoss()},
	} {
		t.Run(side.name, func(t *testing.T) {
			teacher := forwardLogits(t, side.other, x, batch)
			alone, err := Build(side.own, NetOptions{Batch: batch, Mode: ModeTrain, Loss: loss})
			if err != nil {
				t.Fatal(err)
			}
			copy(alone.X, x)
			copy(alone.Labels, labels)
			copy(alone.Teacher, teacher)
			if err := alone.Run(); err != nil {
				t.Fatal(err)
			}
			if a, b := side.jointLoss.Loss, alone.LastLoss().Loss; math.Abs(a-b) > 1e-9 {
				t.Errorf("loss %.9g in the joint net, %.9g alone", a, b)
			}
			for i, p := range alone.Params() {
				jp := side.params[i]
				if p.Name != jp.Name {
					t.Fatalf("parameter %d is %s alone, %s in the joint net", i, p.Name, jp.Name)
				}
				for j, g := range p.Grad() {
					if d := math.Abs(float64(g - jp.Grad()[j])); d > 1e-6 {
						t.Fatalf("%s grad[%d] = %g in the joint net, %g alone", p.Name, j, jp.Grad()[j], g)
					}
				}
			}
		})
	}
}

func forwardLogits(t *testing.T, m *Model, x []float32, batch int) []float32 {
	t.Helper()
	n, err := Build(m, NetOptions{Batch: batch, Mode: ModeEval})
	if err != nil {
		t.Fatal(err)
	}
	copy(n.X, x)
	if err := n.Run(); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(n.Logits())
}

// TestTrainWithPeer trains two differently shaped models together on synthetic
// blobs: both must change, both must learn, and each keeps its pruned zeros.
func TestTrainWithPeer(t *testing.T) {
	ds, err := data.Load(data.Config{Dataset: data.KindSynthetic, BatchSize: 32, EvalBatchSize: 100, Features: 8, Classes: 4, Samples: 1000}, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	student := MustNew(arch.Spec{Arch: "mlp", Inputs: 8, Hidden: []int{6}, Classes: 4}, rng)
	peer := MustNew(arch.Spec{Arch: "mlp", Inputs: 8, Hidden: []int{16}, Classes: 4}, rng)
	// Prune half of the peer's first layer: mutual learning must keep it pruned.
	w := peer.WeightLayers()[0].Weights[0]
	w.Mask = make([]float32, len(w.Data))
	for i := range w.Mask {
		w.Mask[i] = float32(i % 2)
	}
	peer.WeightLayers()[0].Pruned = true
	peer.ApplyMasks()
	s0, p0 := student.Clone(), peer.Clone()
	before := [2]float64{accuracy(t, student, ds.Test), accuracy(t, peer, ds.Test)}

	var stats []EpochStats
	err = Train(context.Background(), student, ds.Train, TrainOptions{
		Epochs: 5, BatchSize: 32, Shuffle: true, Optimizer: OptimizerConfig{Name: "adam", LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, LRDecay: 1},
		Loss: Loss{Distill: true, Temperature: 2, Alpha: 0.5}, Peer: peer,
		EpochEnd: func(_ int, s EpochStats, _ *TrainState) error { stats = append(stats, s); return nil },
	}, rand.New(rand.NewPCG(7, 8)))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		name          string
		now, was      *Model
		before, after float64
	}{
		{"student", student, s0, before[0], accuracy(t, student, ds.Test)},
		{"peer", peer, p0, before[1], accuracy(t, peer, ds.Test)},
	} {
		if slices.Equal(m.now.WeightLayers()[0].Weights[0].Data, m.was.WeightLayers()[0].Weights[0].Data) {
			t.Errorf("%s: weights did not change", m.name)
		}
		t.Logf("%s: test accuracy %.3f before, %.3f after", m.name, m.before, m.after)
		if m.after < 0.7 || m.after < m.before+0.3 {
			t.Errorf("%s: test accuracy %.3f before, %.3f after five epochs: it did not learn", m.name, m.before, m.after)
		}
	}
	for i, v := range peer.WeightLayers()[0].Weights[0].Data {
		if i%2 == 0 && v != 0 {
			t.Fatalf("peer fc1.weight[%d] = %g: a pruned weight came back", i, v)
		}
	}
	if len(stats) != 5 || stats[4].PeerLoss <= 0 || stats[4].PeerLoss >= stats[0].PeerLoss || stats[4].Loss >= stats[0].Loss {
		t.Errorf("epoch losses should fall for both models: %+v", stats)
	}
}

func accuracy(t *testing.T, m *Model, s *data.Split) float64 {
	t.Helper()
	r, err := Evaluate(context.Background(), m, s, 100)
	if err != nil {
		t.Fatal(err)
	}
	return r.Accuracy
}
