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
	batchSize = min(batchSize, max(s.N, 1))
	net, err := Build(m, NetOptions{Batch: batchSize, Mode: ModeEval})
	if err != nil {
		return Result{}, err
	}
	classes := m.Spec.Classes
	labels := make([]float32, batchSize)
	var correct int
	var loss float64
	ce := Loss{}
	for start := 0; start < s.N; start += batchSize {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		n, y := net.loadBatch(s, start)
		fillLabels(labels, y, n)
		if err := net.Run(); err != nil {
			return Result{}, err
		}
		logits := net.Logits()
		for i := 0; i < n; i++ {
			if argmax(logits[i*classes:(i+1)*classes]) == int(y[i]) {
				correct++
			}
		}
		loss += ce.Compute(logits, nil, labels, classes, nil).Loss * float64(n)
	}
	if s.N == 0 {
		return Result{Loss: math.NaN()}, nil
	}
	return Result{Accuracy: float64(correct) / float64(s.N), Loss: loss / float64(s.N), Samples: s.N}, nil
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
