package model

import (
	"context"
	"math"

	"github.com/shrink-ml/shrink/data"
)

// Result is a model's accuracy and mean cross-entropy on a split.
type Result struct {
	Accuracy float64 `json:"accuracy"`
	Loss     float64 `json:"loss"`
	Samples  int     `json:"samples"`
}

// Evaluate measures the model on a split in batches of batchSize, the last one
// padded. Quantized weights count as their integers stand for; activations are
// quantized as the layers say.
func Evaluate(ctx context.Context, m *Model, s *data.Split, batchSize int) (Result, error) {
	logits, err := Logits(ctx, m, s, batchSize)
	if err != nil {
		return Result{}, err
	}
	return Score(logits, s.Y, m.Spec.Classes, batchSize), nil
}

// Score is the accuracy and mean cross-entropy of [N, classes] logits against
// labels, the loss summed batch by batch (of batchSize rows) as Evaluate does.
func Score(logits []float32, labels []int32, classes, batchSize int) Result {
	n := len(labels)
	if n == 0 {
		return Result{Loss: math.NaN()}
	}
	batchSize = min(batchSize, n)
	y := make([]float32, batchSize)
	var correct int
	var loss float64
	ce := Loss{}
	for start := 0; start < n; start += batchSize {
		rows := min(batchSize, n-start)
		fillLabels(y[:rows], labels[start:start+rows], rows)
		batch := logits[start*classes : (start+rows)*classes]
		for i := 0; i < rows; i++ {
			if argmax(batch[i*classes:(i+1)*classes]) == int(labels[start+i]) {
				correct++
			}
		}
		loss += ce.Compute(batch, nil, y[:rows], classes, nil).Loss * float64(rows)
	}
	return Result{Accuracy: float64(correct) / float64(n), Loss: loss / float64(n), Samples: n}
}

// Logits runs the model over a whole split and returns its [N, classes] outputs.
func Logits(ctx context.Context, m *Model, s *data.Split, batchSize int) ([]float32, error) {
	batchSize = min(batchSize, max(s.N, 1))
	net, err := Build(m, NetOptions{Batch: batchSize, Mode: ModeEval})
	if err != nil {
		return nil, err
	}
	classes := m.Spec.Classes
	out := make([]float32, s.N*classes)
	for start := 0; start < s.N; start += batchSize {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, _ := net.loadBatch(s, start)
		if err := net.Run(); err != nil {
			return nil, err
		}
		copy(out[start*classes:], net.Logits()[:n*classes])
	}
	return out, nil
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
