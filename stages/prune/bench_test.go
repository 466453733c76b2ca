package prune

import (
	"fmt"
	"testing"

	"github.com/shrink-ml/shrink/model"
)

// BenchmarkForward times one forward pass of LeNet-300-100 (784-300-100-10):
// dense, and with the half of fc1's units with the smallest L2 norm removed
// (ln_structured, physical) and then fine-tuned, the model
// recipes/prune-structured.yaml makes. docs/PRUNING.md records the ratio.
//
//	go test ./stages/prune -run '^$' -bench Forward -count 5
func BenchmarkForward(b *testing.B) {
	dense := mlp(784, []int{300, 100}, 10)
	res, err := run(b, newContext(b, dense.Clone(), synthetic(784, 10)), map[string]any{
		"method": "ln_structured", "amount": 0.5, "n": 2, "physical": true, "layers": []any{"fc1"},
		"finetune": map[string]any{"epochs": 1},
	})
	if err != nil {
		b.Fatal(err)
	}
	physical := res.Model
	if physical.WeightLayers()[0].Units() != 150 || physical.WeightLayers()[1].FanIn() != 150 {
		b.Fatalf("fc1 has %d units, fc2 %d inputs: want 150", physical.WeightLayers()[0].Units(), physical.WeightLayers()[1].FanIn())
	}
	for _, batch := range []int{1, 128} {
		for _, c := range []struct {
			name string
			m    *model.Model
		}{{"dense", dense}, {"physical", physical}} {
			b.Run(fmt.Sprintf("batch=%d/%s", batch, c.name), func(b *testing.B) {
				net, err := model.Build(c.m, model.NetOptions{Batch: batch, Mode: model.ModeEval})
				if err != nil {
					b.Fatal(err)
				}
				for i := range net.X {
					net.X[i] = float32(i%255)/255 - 0.5
				}
				for b.Loop() {
					if err := net.Run(); err != nil {
						b.Fatal(err)
					}
				}
				macs := 0
				for _, l := range c.m.WeightLayers() {
					macs += l.MultiplyAdds()
				}
				b.ReportMetric(float64(macs), "MACs/sample")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(batch), "ns/sample")
			})
		}
	}
}
