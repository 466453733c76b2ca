package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestFusedBatchNormReLU: batch norms and residual adds that apply their ReLU
// (FuseReLU; the add its gradient sum and ReLU gradient in one op too) train
// to the same bits as the two ops in turn: logits, every gradient, the
// parameters and running statistics after a few SGD steps, with a short
// batch's padding rows, and with frozen statistics (the eval-style backward).
func TestFusedBatchNormReLU(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rows   int // real rows of the batch of 8; 0: all
		frozen bool
	}{{"full batch", 0, false}, {"padded batch", 5, false}, {"frozen statistics", 0, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var runs [2]*Net
			var models [2]*Model
			for k, fuse := range []bool{true, false} {
				fuseReLU = fuse
				m := MustNew(resnetSpec(8), rand.New(rand.NewPCG(3, 4)))
				if tc.frozen {
					m.FreezeStats = map[string]int{}
					for _, l := range m.Layers {
						if l.Type == "batchnorm2d" {
							m.FreezeStats[l.Name] = 0
						}
					}
				}
				net, err := Build(m, NetOptions{Batch: 8, Mode: ModeTrain})
				fuseReLU = true
				if err != nil {
					t.Fatal(err)
				}
				if tc.frozen {
					net.freezeStats(1)
				}
				opt, err := NewOptimizer(OptimizerConfig{Name: "sgd", LR: 0.1, Momentum: 0.9, WeightDecay: 5e-4}, net.Params())
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(5, 6))
				for step := range 3 {
					for i := range net.X {
						net.X[i] = float32(rng.NormFloat64())
					}
					for i := range net.Labels {
						net.Labels[i] = float32(rng.IntN(4))
					}
					if tc.rows > 0 {
						net.SetRows(tc.rows)
					}
					if err := net.Run(); err != nil {
						t.Fatal(err)
					}
					if step < 2 {
						opt.Step(net.Params())
					}
				}
				runs[k], models[k] = net, m
			}
			if fused := countFused(runs[0], "batchnorm2d"); fused == 0 {
				t.Fatal("no batch norm fused its ReLU: the test compares nothing")
			}
			if fused := countFused(runs[0], "add"); fused == 0 {
				t.Fatal("no residual add fused its ReLU: the test compares nothing")
			}
			// The residual blocks' outputs feed two nodes: their gradient
			// sums run inside the ReLU gradients (nn.sumReLUGradOp).
			steps := map[string]int{}
			for k, net := range runs {
				for _, st := range net.exec.steps {
					steps[fmt.Sprintf("%d %T", k, st.node.Op())]++
				}
			}
			if steps["0 *nn.sumReLUGradOp"] == 0 || steps["1 *nn.sumReLUGradOp"] != 0 || steps["0 *nn.reluOp"] >= steps["1 *nn.reluOp"] {
				t.Fatalf("fused and unfused steps: %v", steps)
			}
			sameBits(t, "logits", runs[0].Logits(), runs[1].Logits())
			for i, p := range runs[0].Params() {
				sameBits(t, "gradient of "+p.Name, p.Grad(), runs[1].Params()[i].Grad())
				sameBits(t, p.Name, p.Data, runs[1].Params()[i].Data)
			}
			for i, l := range models[0].Layers {
				for j, b := range l.Buffers {
					sameBits(t, fmt.Sprintf("%s buffer %d", l.Name, j), b.Data, models[1].Layers[i].Buffers[j].Data)
				}
			}
		})
	}
}

// countFused counts the relu layers that added no op of their own.
// countFused counts the layers of type typ that apply the ReLU after them.
func countFused(n *Net, typ string) int {
	fused := 0
	for i, l := range n.Model.Layers {
		if l.Type == "relu" && i > 0 && n.Model.Layers[i-1].Type == typ && (&layerBuilder{net: n, layer: n.Model.Layers[i-1]}).FuseReLU() {
			fused++
		}
	}
	return fused
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %g fused, %g unfused", what, i, got[i], want[i])
		}
	}
}
