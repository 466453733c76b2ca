package lowrank

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/model"
)

// The benchmarks time LeNet-300-100's forward pass (eval mode, one Run of the
// compiled graph), dense and with fc1 at rank 64, at batch 1 and 1000. Weights
// do not change the work, so they are PyTorch's default init. docs/LOWRANK.md
// has the numbers:
//
//	go test ./stages/lowrank -run '^$' -bench Forward -count 5

var benchBatches = []int{1, 1000}

// forwardNet compiles LeNet-300-100 for a batch, fc1 factored at rank (0: dense).
func forwardNet(b *testing.B, batch, rank int) *model.Net {
	b.Helper()
	m := randomModel(arch.Spec{Arch: "mlp", Inputs: 784, Hidden: []int{300, 100}, Classes: 10}, 1)
	if rank > 0 {
		if _, err := factorLayer(m.Layer("fc1"), rule{rank: rank}, nopLog); err != nil {
			b.Fatal(err)
		}
	}
	net, err := model.Build(m, model.NetOptions{Batch: batch, Mode: model.ModeEval})
	if err != nil {
		b.Fatal(err)
	}
	for i := range net.X {
		net.X[i] = float32(i%255)/255 - 0.5
	}
	return net
}

func BenchmarkForward(b *testing.B) {
	for _, batch := range benchBatches {
		for _, v := range []struct {
			name string
			rank int
		}{{"dense", 0}, {"fc1-rank64", 64}} {
			b.Run(fmt.Sprintf("batch=%d/%s", batch, v.name), func(b *testing.B) {
				net := forwardNet(b, batch, v.rank)
				for b.Loop() {
					if err := net.Run(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}

// BenchmarkForwardSpeedup runs the dense and the factored pass alternately and
// reports the median of the per-pair time ratios (dense / factored), which
// other jobs on a shared machine disturb far less than separate timings.
func BenchmarkForwardSpeedup(b *testing.B) {
	for _, batch := range benchBatches {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			dense, factored := forwardNet(b, batch, 0), forwardNet(b, batch, 64)
			var ratios []float64
			for b.Loop() {
				var took [2]time.Duration
				for i, net := range []*model.Net{dense, factored} {
					start := time.Now()
					if err := net.Run(); err != nil {
						b.Fatal(err)
					}
					took[i] = time.Since(start)
				}
				ratios = append(ratios, float64(took[0])/float64(took[1]))
			}
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "x-faster")
		})
	}
}

// BenchmarkDecompose times the float64 SVD of LeNet-300-100's fc1 (300x784),
// the stage's main cost before fine-tuning.
func BenchmarkDecompose(b *testing.B) {
	w := randomMatrix(300, 784, 1)
	for b.Loop() {
		if _, err := decompose(w, 300, 784); err != nil {
			b.Fatal(err)
		}
	}
}
