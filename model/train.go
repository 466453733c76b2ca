package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/shrink-ml/shrink/data"
)

// TrainOptions configure Train.
type TrainOptions struct {
	Epochs    int
	BatchSize int
	Shuffle   bool
	Optimizer OptimizerConfig
	Loss      Loss
	// Teacher fills the teacher's logits for the given training rows (distillation).
	Teacher func(rows []int32, logits []float32) error
	// Peer, when set, trains alongside the model by deep mutual learning (see
	// mutual.go): each learns from the labels and the other's logits with Loss's
	// temperature and alpha. The peer's compression state stays as the model's does.
	Peer *Model
	// StartEpoch and Resume continue an interrupted run: the epochs before
	// StartEpoch are done, the optimizer state is Resume's. The caller restores the
	// weights and the random source.
	StartEpoch int
	Resume     *OptState
	ActRanges  map[string][2]float32 // moving-average activation ranges to resume with
	// Progress is called after every batch.
	Progress func(p Progress)
	// EpochEnd is called after every epoch with the training state (to save it, to
	// snapshot weights); an error stops training.
	EpochEnd func(epoch int, stats EpochStats, st *TrainState) error
}

// TrainState is what resuming a training run needs besides the weights and the
// random source.
type TrainState struct {
	Epoch     int
	Opt       *OptState
	ActRanges map[string][2]float32 // layer -> moving-average input range (QAT)
}

// Progress is where training stands.
type Progress struct {
	Epoch, Epochs   int
	Batch, Batches  int
	Loss            float64 // running mean over the epoch
	SamplesPerSec   float64
	Elapsed, Remain time.Duration // within the epoch
}

// EpochStats summarize one epoch.
type EpochStats struct {
	Epoch int
	Loss  float64 // mean training loss
	// StartLoss is the loss of the first batch this training saw: a mean loss
	// far above it means training is diverging short of NaN (Adam at lr 1e9
	// ends at a loss of 1e28 and chance accuracy, every loss finite).
	StartLoss float64
	// PeerLoss is the peer's mean training loss (mutual learning only).
	PeerLoss float64
	Seconds  float64
}

// Train fits the model to the training split. Pruned weights stay zero; quantized
// layers train with fake quantization and are quantized again at the end. A NaN or
// infinite loss stops training with an error naming the epoch and batch. ctx is
// checked between batches.
func Train(ctx context.Context, m *Model, train *data.Split, opt TrainOptions, rng *rand.Rand) error {
	if opt.BatchSize <= 0 {
		return fmt.Errorf("batch size must be positive")
	}
	// A batch larger than the split is the whole split (full-batch training):
	// the graph is never built for rows that cannot exist.
	opt.BatchSize = min(opt.BatchSize, max(train.N, 1))
	net, err := buildTrainNet(m, opt, rng)
	if err != nil {
		return err
	}
	optim, err := NewOptimizer(opt.Optimizer, net.Params())
	if err != nil {
		return err
	}
	if opt.Resume != nil {
		if len(opt.Resume.Moments) != len(optim.State.Moments) {
			return fmt.Errorf("resume: optimizer state has %d tensors, the model needs %d", len(opt.Resume.Moments), len(optim.State.Moments))
		}
		optim.State = *opt.Resume
	}
	for name, r := range opt.ActRanges {
		if op := net.inputQ[name]; op != nil && op.observer == MovingAverage {
			op.runMin, op.runMax, op.Seen = r[0], r[1], true
		}
	}
	classes := m.Spec.Classes
	batcher := data.NewBatcher(train, opt.BatchSize, opt.Shuffle)
	labels := make([]int32, opt.BatchSize)
	var startLoss float64
	started := false
	for epoch := opt.StartEpoch + 1; epoch <= opt.Epochs; epoch++ {
		start := time.Now()
		net.freezeStats(epoch)
		batcher.Epoch(rng)
		var sum, peerSum float64
		var seen int
		nb := batcher.NumBatches()
		order := batcher.Order()
		for b := 0; ; b++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, ok := batcher.Next(net.X, labels)
			if !ok {
				break
			}
			fillLabels(net.Labels, labels, n)
			padRows(net.X, n, opt.BatchSize)
			net.SetRows(n)
			if opt.Teacher != nil {
				rows := order[b*opt.BatchSize : b*opt.BatchSize+n]
				if err := opt.Teacher(rows, net.Teacher[:n*classes]); err != nil {
					return err
				}
			}
			if err := net.Run(); err != nil {
				return fmt.Errorf("epoch %d, batch %d: %w", epoch, b+1, err)
			}
			lv := net.LastLoss()
			if math.IsNaN(lv.Loss) || math.IsInf(lv.Loss, 0) {
				if optim.State.Step == 0 {
					// No update yet: the learning rate cannot be the cause.
					return fmt.Errorf("epoch %d, batch %d: the loss is %v before the first update, so not from the learning rate: the starting model's outputs on this batch overflow float32; check the inputs' scale (data.normalize) and the weights the stage starts from", epoch, b+1, lv.Loss)
				}
				return fmt.Errorf("epoch %d, batch %d: the loss is %v: training diverged; lower the learning rate", epoch, b+1, lv.Loss)
			}
			optim.Step(net.Params())
			if !started {
				startLoss, started = lv.Loss, true
			}
			sum += lv.Loss * float64(n)
			peerSum += net.PeerLoss().Loss * float64(n)
			seen += n
			if opt.Progress != nil {
				el := time.Since(start)
				rate := float64(seen) / max(el.Seconds(), 1e-9)
				opt.Progress(Progress{Epoch: epoch, Epochs: opt.Epochs, Batch: b + 1, Batches: nb, Loss: sum / float64(seen),
					SamplesPerSec: rate, Elapsed: el, Remain: time.Duration(float64(train.N-seen) / rate * float64(time.Second))})
			}
		}
		optim.EndEpoch()
		if opt.EpochEnd != nil {
			stats := EpochStats{Epoch: epoch, Loss: sum / float64(max(seen, 1)), StartLoss: startLoss, PeerLoss: peerSum / float64(max(seen, 1)), Seconds: time.Since(start).Seconds()}
			st := &TrainState{Epoch: epoch, Opt: &optim.State, ActRanges: net.actRanges()}
			if err := opt.EpochEnd(epoch, stats, st); err != nil {
				return err
			}
		}
	}
	net.finish()
	return nil
}

// actRanges are the moving-average ranges of the activation quantizers.
func (n *Net) actRanges() map[string][2]float32 {
	out := map[string][2]float32{}
	for name, op := range n.inputQ {
		if op.observer == MovingAverage && op.Seen {
			out[name] = [2]float32{op.runMin, op.runMax}
		}
	}
	return out
}

// fillLabels writes labels as the float class indices the graph reads, padding
// rows past n with Ignore.
func fillLabels(dst []float32, labels []int32, n int) {
	for i := range dst {
		if i < n {
			dst[i] = float32(labels[i])
		} else {
			dst[i] = Ignore
		}
	}
}

// finish hands what training learned back to the model: the weights of quantized
// layers are quantized again from their final values, and static activation ranges
// take the moving averages.
func (n *Net) finish() {
	for _, l := range n.Model.WeightLayers() {
		if op := n.inputQ[l.Name]; op != nil && op.observer == MovingAverage && op.Seen {
			l.Input.RangeMin, l.Input.RangeMax = op.runMin, op.runMax
			// From the range, not op.Params: a run resumed after its last epoch
			// never ran a batch to compute them.
			l.Input.Params = op.spec.ObserveRange(op.runMin, op.runMax)
		}
	}
	for _, l := range n.Model.Layers {
		if l.Frozen == Trainable { // a frozen base stays on the grid it was put on
			l.Requantize()
		}
	}
	if n.peer != nil {
		n.peer.finish()
	}
}

// Requantize observes every quantized layer's weights afresh and snaps them to
// the grid, so Data holds exactly what the stored integers will stand for.
func (m *Model) Requantize() {
	for _, l := range m.Layers {
		l.Requantize()
	}
}

// Requantize snaps a quantized layer's weights to the grid of their current
// values, as torch.ao's observers measure them (min and max per tensor or per
// output channel). Pruned zeros stay zero: zero always maps to the zero point.
// A float layer is left alone.
func (l *Layer) Requantize() {
	if l.Quant == nil {
		return
	}
	for _, w := range l.Weights {
		p := l.Quant.ParamsFor(w.Data, w.Shape)
		w.QParams = &p
		l.Quant.FakeQuantize(w.Data, p, w.Data)
	}
}
