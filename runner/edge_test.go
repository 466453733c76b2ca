package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/internal/npy"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
	"github.com/shrink-ml/shrink/stages"
)

// Tiny models for the edge recipes, each with the shape of one sample of the
// npy data edgeData writes for it.
var edgeModels = map[string]struct {
	yaml  string
	shape []int
}{
	"mlp": {`{arch: mlp, hidden: [5], classes: 3}`, []int{6}},
	"conv": {`
  input: [1, 6, 6]
  classes: 3
  layers:
    - {name: conv1, type: conv2d, out: 4, kernel: 3, padding: 1}
    - {name: bn1, type: batchnorm2d}
    - {type: relu}
    - {name: conv2, type: conv2d, out: 4, kernel: 3, padding: 1}
    - {type: relu}
    - {type: adaptive_avgpool2d}
    - {type: flatten}
    - {name: fc, type: linear, out: 3}`, []int{1, 6, 6}},
	"lstm":   {`{arch: lstm, hidden: 4, classes: 3}`, []int{4, 3}},
	"lenet5": {`{arch: lenet5, channels: [1, 1], hidden: [1, 1], classes: 3}`, []int{1, 28, 28}},
	"resnet": {`{arch: resnet, depth: 8, width: 1, classes: 3}`, []int{1, 6, 6}},
	"bn1d": {`
  input: [6]
  classes: 3
  layers:
    - {name: fc1, type: linear, out: 4}
    - {name: bn, type: batchnorm1d}
    - {type: relu}
    - {type: dropout, p: 1}
    - {name: fc2, type: linear, out: 3}`, []int{6}},
	// Token ids: edgeData writes integers 0..4 for a model whose name starts
	// with "tokens".
	"tokens": {`
  input: [4]
  classes: 3
  layers:
    - {name: emb, type: embedding, num: 5, dim: 2}
    - {name: lstm, type: lstm, hidden: 2}
    - {type: last}
    - {name: fc, type: linear, out: 3}`, []int{4}},
}

// edgeCase is a recipe the schema accepts, with values at the edge of what
// it accepts. want is "" when every stage must run and give finite metrics;
// otherwise the stage failStage must fail (or the recipe must be refused
// before anything runs, when failStage is "") with an error holding every
// string of want.
type edgeCase struct {
	name        string
	model       string  // a key of edgeModels
	train, test int     // samples in each split
	batch       int     // data.batch_size (0: 4)
	scale       float32 // multiplies the inputs (0: 1)
	stages      string  // the recipe's stages section, indented two spaces
	failStage   string
	want        []string
	check       func(t *testing.T, m *runner.Manifest)
}

// trainStage is a one-epoch training the other stages start from.
const trainStage = `
  train: {type: train, epochs: 1, optimizer: {name: adam, lr: 0.01}}`

func TestEdgeRecipes(t *testing.T) {
	cases := []edgeCase{
		{name: "batch larger than the data", model: "mlp", train: 5, test: 3, batch: 64, stages: trainStage},
		{name: "batch of one", model: "mlp", train: 5, test: 3, batch: 1, stages: trainStage},
		{name: "one sample", model: "mlp", train: 1, test: 1, stages: trainStage},
		{name: "conv one sample", model: "conv", train: 1, test: 1, stages: trainStage},
		{name: "lstm one sample", model: "lstm", train: 1, test: 1, stages: trainStage},
		{name: "zero epochs", model: "mlp", train: 5, test: 3, stages: `
  train: {type: train, epochs: 0}`},
		{name: "tiny learning rate", model: "mlp", train: 5, test: 3, stages: `
  train: {type: train, epochs: 1, optimizer: {name: sgd, lr: 1e-300}}`},
		{name: "empty test split", model: "mlp", train: 5, test: 0, stages: trainStage, failStage: "train", want: []string{"test.x", "xt.npy holds no samples"}},
		{name: "empty train split", model: "mlp", train: 0, test: 3, stages: trainStage, failStage: "train", want: []string{"train.x", "x.npy holds no samples"}},
		{name: "huge inputs untrained", model: "mlp", train: 5, test: 3, scale: 5e37, stages: `
  train: {type: train, epochs: 0}`},
		{name: "huge inputs conv untrained", model: "conv", train: 5, test: 3, scale: 5e37, stages: `
  train: {type: train, epochs: 0}
  q: {type: quantize, needs: [train], mode: static, calibration_batches: 1}`, failStage: "train", want: []string{"test split", "not finite", "data.normalize"}},
		{name: "zero inputs static", model: "conv", train: 5, test: 3, scale: 1e-45, stages: `
  q: {type: quantize, mode: static, calibration_batches: 1}
  qat: {type: qat, epochs: 1, calibration_batches: 1}`},
		{name: "validation split of one sample", model: "mlp", train: 2, test: 1, stages: `
  train: {type: train, epochs: 1, data: {validation_split: 0.5}}`},
		{name: "validation split leaves none", model: "mlp", train: 1, test: 1, stages: `
  train: {type: train, epochs: 1, data: {validation_split: 0.9}}`, failStage: "train", want: []string{"validation_split", "1 row(s), too few"}},
		{name: "huge learning rate", model: "mlp", train: 5, test: 3, stages: `
  train: {type: train, epochs: 2, optimizer: {name: sgd, lr: 1e30}}`, failStage: "train", want: []string{"loss is NaN", "lower the learning rate"}},
		{name: "train head only one sample", model: "conv", train: 1, test: 1, stages: `
  train: {type: train, epochs: 1, layers: [fc]}`},

		{name: "prune amount 0", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: l1_unstructured, amount: 0.0}`, check: func(t *testing.T, m *runner.Manifest) {
			same(t, m, "train", "prune", "accuracy", "loss", "params_nonzero")
			wantMetric(t, m, "prune", "weight_sparsity", 0)
		}},
		{name: "prune amount 1.0", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: l1_unstructured, amount: 1.0, finetune: {epochs: 1}}`, check: func(t *testing.T, m *runner.Manifest) {
			// Every weight stays zero through the finetune; the biases train.
			wantMetric(t, m, "prune", "weight_sparsity", 1)
			wantMetric(t, m, "prune", "layers.fc1.nonzero", 0)
		}},
		{name: "prune random 1.0", model: "conv", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: random_unstructured, amount: 1.0, finetune: {epochs: 1}}`},
		{name: "prune count of every weight", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: l1_unstructured, layers: [fc1], amount: 30}`, check: func(t *testing.T, m *runner.Manifest) {
			wantMetric(t, m, "prune", "layers.fc1.sparsity", 1)
			wantMetric(t, m, "prune", "layers.fc2.sparsity", 0)
		}},
		{name: "global prune 1.0", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: global_unstructured, amount: 1.0}`},
		{name: "global prune removes a layer", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: global_unstructured, amount: 0.98}`, check: func(t *testing.T, m *runner.Manifest) {
			// 45 weights, round(0.02 * 45) = 1 kept over both layers.
			wantMetric(t, m, "prune", "layers.fc1.nonzero", 1-metric(t, m, "prune", "layers.fc2.nonzero"))
		}},
		{name: "ln_structured 1.0 dim 0", model: "conv", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: ln_structured, amount: 1.0, finetune: {epochs: 1}}`},
		{name: "ln_structured 1.0 dim 1", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: ln_structured, dim: 1, amount: 1.0}`},
		{name: "ln_structured physical every channel", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: ln_structured, physical: true, amount: 1.0}`, want: []string{"stages.prune.amount: 1.0 prunes every channel, and physical removes pruned channels"}},
		{name: "ln_structured physical every unit of one layer", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: ln_structured, physical: true, amounts: {fc1: 1.0}}`, failStage: "prune", want: []string{"layer fc1", "every one of its 5 units", "lower the amount"}},
		{name: "group_norm physical every channel", model: "conv", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: group_norm, physical: true, amount: 1.0}`, want: []string{"stages.prune.amount: 1.0 prunes every channel"}},
		{name: "group_norm target tiny", model: "conv", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: group_norm, physical: true, target: {macs: 0.000001}}`, failStage: "prune", want: []string{"target macs 1e-06 cannot be reached"}},
		{name: "ln_structured target params tiny", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: ln_structured, target: {params: 0.000001}}`, failStage: "prune", want: []string{"target params 1e-06 cannot be reached"}},
		{name: "lottery ticket one sample", model: "mlp", train: 1, test: 1, stages: `
  prune: {type: prune, method: lottery_ticket, rounds: 2, rate: 0.99, output_rate: 0.99, train: {epochs: 1}}`},
		{name: "lottery ticket best_val", model: "mlp", train: 3, test: 1, stages: `
  prune: {type: prune, method: lottery_ticket, rounds: 1, select: best_val, train: {epochs: 1}, data: {validation_split: 0.5}}`},
		{name: "lstm prune 1.0", model: "lstm", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: l1_unstructured, amount: 1.0}`},

		{name: "quantize after prune 1.0", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: l1_unstructured, amount: 1.0}
  q: {type: quantize, needs: [prune], bits: 2}
  qs: {type: quantize, needs: [prune], bits: 2, mode: static, scheme: asymmetric, granularity: per_tensor}`, check: func(t *testing.T, m *runner.Manifest) {
			same(t, m, "prune", "q", "accuracy", "loss", "params_nonzero")
			same(t, m, "prune", "qs", "params_nonzero")
		}},
		{name: "quantize 2 bits static one-sample calibration", model: "mlp", train: 5, test: 3, batch: 1, stages: trainStage + `
  q: {type: quantize, needs: [train], bits: 2, mode: static, calibration_batches: 1, activations: {bits: 2}}`},
		{name: "quantize percentile extremes", model: "mlp", train: 5, test: 3, batch: 1, stages: trainStage + `
  q100: {type: quantize, needs: [train], mode: static, observer: percentile, percentile: 100, calibration_batches: 1}
  q50: {type: quantize, needs: [train], mode: static, observer: percentile, percentile: 50.000001, calibration_batches: 1}`},
		{name: "quantize conv static one sample", model: "conv", train: 1, test: 1, stages: trainStage + `
  q: {type: quantize, needs: [train], bits: 2, mode: static, calibration_batches: 1000}`},
		{name: "quantize conv static constant input", model: "conv", train: 1, test: 1, stages: `
  q: {type: quantize, bits: 3, mode: static, scheme: asymmetric, granularity: per_tensor, activations: {bits: 2, scheme: symmetric}}`},
		{name: "quantize lstm dynamic", model: "lstm", train: 1, test: 1, stages: trainStage + `
  q: {type: quantize, needs: [train], bits: 2, activations: {reduce_range: true}}`},
		{name: "quantize lstm after prune 1.0", model: "lstm", train: 3, test: 1, stages: trainStage + `
  prune: {type: prune, needs: [train], method: l1_unstructured, amount: 1.0}
  q: {type: quantize, needs: [prune], bits: 8, activations: {reduce_range: true}}`},

		{name: "qat freeze 0 two bits", model: "conv", train: 5, test: 3, stages: trainStage + `
  qat: {type: qat, needs: [train], bits: 2, freeze_bn_after: 0, calibration_batches: 1, activations: {bits: 2}}`},
		{name: "qat freeze after the last epoch", model: "conv", train: 1, test: 1, stages: trainStage + `
  qat: {type: qat, needs: [train], epochs: 1, freeze_bn_after: 100}`},
		{name: "qat zero epochs", model: "conv", train: 5, test: 3, stages: trainStage + `
  qat: {type: qat, needs: [train], epochs: 0}`},
		{name: "qat after prune 1.0", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: l1_unstructured, amount: 1.0}
  qat: {type: qat, needs: [prune], bits: 2}`},
		{name: "qat dynamic lstm", model: "lstm", train: 3, test: 1, stages: trainStage + `
  qat: {type: qat, needs: [train], mode: dynamic, activations: {reduce_range: true}}`},

		{name: "lowrank rank 1", model: "conv", train: 5, test: 3, stages: trainStage + `
  lr: {type: lowrank, needs: [train], rank: 1, finetune: {epochs: 1}}`, check: func(t *testing.T, m *runner.Manifest) {
			wantMetric(t, m, "lr", "layers.conv2.rank", 1)
		}},
		{name: "lowrank rank above min", model: "mlp", train: 5, test: 3, stages: trainStage + `
  lr: {type: lowrank, needs: [train], rank: 1000}`, check: func(t *testing.T, m *runner.Manifest) {
			// rank x (out + in) >= out x in: every layer stays dense, unchanged.
			same(t, m, "train", "lr", "accuracy", "loss", "params_total")
		}},
		{name: "lowrank energy extremes", model: "mlp", train: 5, test: 3, stages: trainStage + `
  e1: {type: lowrank, needs: [train], energy: 1.0}
  e0: {type: lowrank, needs: [train], energy: 1e-12}`},
		{name: "lowrank of zero weights", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: l1_unstructured, amount: 1.0}
  lr: {type: lowrank, needs: [prune], rank: 1}
  e: {type: lowrank, needs: [prune], energy: 0.5}`},
		{name: "lowrank then quantize static", model: "mlp", train: 5, test: 3, stages: trainStage + `
  lr: {type: lowrank, needs: [train], rank: 1}
  q: {type: quantize, needs: [lr], bits: 2, mode: static, calibration_batches: 1}`},

		{name: "distill alpha 0 tiny temperature", model: "mlp", train: 5, test: 3, stages: trainStage + `
  d: {type: distill, needs: [train], teacher: train, alpha: 0, temperature: 1e-30}`},
		{name: "distill huge temperature", model: "mlp", train: 5, test: 3, stages: trainStage + `
  d: {type: distill, needs: [train], teacher: train, alpha: 0, temperature: 1e30}`},
		{name: "distill alpha 1", model: "mlp", train: 5, test: 3, stages: trainStage + `
  d: {type: distill, alpha: 1, student: {hidden: [1]}}`},
		{name: "distill online one sample", model: "mlp", train: 1, test: 1, stages: trainStage + `
  d: {type: distill, needs: [train], teacher: train, mode: online, temperature: 1e-20}`},

		{name: "lora rank above the layer", model: "mlp", train: 5, test: 3, stages: trainStage + `
  l: {type: lora, needs: [train], targets: [fc1, fc2], r: 100}
  m: {type: lora, needs: [train], targets: [fc1, fc2], r: 100, merge: true}`},
		{name: "lora nf4 base smaller than a block", model: "mlp", train: 5, test: 3, stages: trainStage + `
  l: {type: lora, needs: [train], targets: [fc1], base: nf4, blocksize: 4096, merge: true}`},
		{name: "lora int4 conv", model: "conv", train: 1, test: 1, stages: trainStage + `
  l: {type: lora, needs: [train], targets: [conv1, conv2], base: int4, r: 64, dropout: 0.999, merge: true, batchnorm: update}`},
		{name: "lora after prune 1.0", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: l1_unstructured, amount: 1.0}
  l: {type: lora, needs: [prune], targets: [fc1], base: nf4, merge: true}
  l8: {type: lora, needs: [prune], targets: [fc1], base: int8}`},

		{name: "select ties", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: l1_unstructured, matrix: {amount: [0.0, 0]}}
  best: {type: select, needs: [prune], metric: accuracy, goal: max}`, check: func(t *testing.T, m *runner.Manifest) {
			// Both branches keep every weight: a tie, which the first in run order wins.
			same(t, m, "prune[amount=0.0]", "prune[amount=0]", "accuracy")
			if got := m.Stage("best").Metrics["selected"]; got != "prune[amount=0.0]" {
				t.Errorf("selected %v, want the first of the tied branches", got)
			}
		}},
		{name: "select rejects all", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: l1_unstructured, matrix: {amount: [0.5, 0.9]}}
  best: {type: select, needs: [prune], metric: accuracy, goal: max, where: {accuracy: {min: 2}}}`, failStage: "best", want: []string{"no candidate qualifies", "loosen where"}},
		{name: "adam eps below float32", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: l1_unstructured, amount: 0.5, finetune: {epochs: 1, optimizer: {name: adam, eps: 1e-300}}}`, want: []string{"stages.prune.finetune.optimizer.eps: 1e-300 is 0 in float32"}},
		{name: "optimizer values beyond float32", model: "mlp", train: 5, test: 3, stages: `
  train: {type: train, epochs: 1, optimizer: {name: sgd, lr: 1e39, weight_decay: 1e300}}`,
			want: []string{"stages.train.optimizer.lr: 1e+39 is +Inf in float32", "stages.train.optimizer.weight_decay: 1e+300 is +Inf in float32"}},
		{name: "adam betas 0", model: "mlp", train: 5, test: 3, stages: `
  train: {type: train, epochs: 2, optimizer: {name: adam, beta1: 0, beta2: 0, lr_decay: 1e-300}}`},
		{name: "sgd momentum near 1", model: "mlp", train: 5, test: 3, stages: `
  train: {type: train, epochs: 2, optimizer: {name: sgd, lr: 0.001, momentum: 0.999999, weight_decay: 1e-300}}`},
		{name: "one-unit mlp", model: "mlp", train: 5, test: 3, stages: `
  train: {type: train, epochs: 1, data: {shuffle: false, eval_batch_size: 1}}
  d: {type: distill, teacher: train, student: {hidden: [1, 1]}, batch_size: 1000}
  lr: {type: lowrank, needs: [train], ranks: {fc1: 1}, energies: {fc2: 1e-9}}`},
		{name: "per-layer amounts 1.0 and 0", model: "mlp", train: 5, test: 3, stages: trainStage + `
  prune: {type: prune, needs: [train], method: ln_structured, amounts: {fc1: 1.0, fc2: 0.0}, amount: 0.5, finetune: {epochs: 1, batch_size: 1}}`},
		{name: "lottery ticket rewind to last epoch", model: "mlp", train: 5, test: 3, stages: `
  prune: {type: prune, method: lottery_ticket, rounds: 1, rate: 0.999999, rewind: {epoch: 1}, control: random_reinit, train: {epochs: 1}}`},
		{name: "quantize overrides", model: "conv", train: 5, test: 3, stages: trainStage + `
  q: {type: quantize, needs: [train], mode: static, calibration_batches: 1, keep_batchnorm: true, overrides: {conv1: {bits: 2, granularity: per_tensor}, fc: {bits: 2, scheme: asymmetric}}}
  qat: {type: qat, needs: [train], calibration_batches: 1, observer: percentile, percentile: 50.000001, overrides: {conv2: {bits: 2}}, freeze_bn_after: 1, epochs: 2, batch_size: 1}`},
		{name: "lora train_also zero epochs", model: "conv", train: 5, test: 3, stages: trainStage + `
  l: {type: lora, needs: [train], targets: [conv2], train_also: [fc], epochs: 0, alpha: 1e-30, rslora: true}
  l2: {type: lora, needs: [train], targets: [fc], alpha: 1e30, batch_size: 1}`},
		{name: "select ties on nested metric", model: "mlp", train: 5, test: 3, stages: trainStage + `
  q: {type: quantize, needs: [train], matrix: {bits: [2, 2.0]}}
  best: {type: select, needs: [q], metric: [layers.fc1.bits, accuracy], goal: min}`},
		{name: "select after select", model: "mlp", train: 5, test: 3, stages: trainStage + `
  q: {type: quantize, needs: [train], matrix: {bits: [4, 8]}}
  best: {type: select, needs: [q], metric: size_bytes, goal: min}
  again: {type: select, needs: [best, train], metric: accuracy, goal: max}`},
		{name: "lenet5 one channel", model: "lenet5", train: 2, test: 1, batch: 1, stages: trainStage + `
  g: {type: prune, needs: [train], method: group_norm, amount: 1.0}
  q: {type: qat, needs: [train], bits: 2, calibration_batches: 1}
  lr: {type: lowrank, needs: [train], rank: 1}`},
		{name: "lenet5 physical prune of its one channel", model: "lenet5", train: 2, test: 1, batch: 1, stages: trainStage + `
  p: {type: prune, needs: [train], method: ln_structured, physical: true, amount: 0.99}`,
			failStage: "p", want: []string{"layer conv1", "every one of its 1 units"}},
		{name: "resnet width 1", model: "resnet", train: 3, test: 2, batch: 1, stages: trainStage + `
  g: {type: prune, needs: [train], method: group_norm, amount: 1.0, finetune: {epochs: 1}}
  gp: {type: prune, needs: [train], method: group_norm, physical: true, amount: 0.4}
  t: {type: prune, needs: [train], method: group_norm, physical: true, target: {params: 1.0}}
  q: {type: quantize, needs: [train], mode: static, bits: 2, calibration_batches: 1}
  qat: {type: qat, needs: [train], bits: 2, calibration_batches: 1, freeze_bn_after: 0}
  l: {type: lora, needs: [train], targets: ["re:.*conv.*"], r: 64, base: nf4, batchnorm: update, merge: true}
  d: {type: distill, teacher: train, student: {width: 1, depth: 8}, temperature: 1e-30, alpha: 0}`},
		{name: "batchnorm1d batch of one", model: "bn1d", train: 3, test: 1, batch: 1, stages: trainStage,
			failStage: "train", want: []string{"batch norm bn", "got 1: a batch of one sample", "batch_size above 1"}},
		{name: "batchnorm1d last batch of one", model: "bn1d", train: 5, test: 1, batch: 4, stages: trainStage,
			failStage: "train", want: []string{"epoch 1, batch 2", "batch norm bn", "a batch of one sample"}},
		{name: "batchnorm1d, dropout 1", model: "bn1d", train: 3, test: 1, batch: 3, stages: trainStage + `
  q: {type: quantize, needs: [train], mode: static, calibration_batches: 1}
  qat: {type: qat, needs: [train], calibration_batches: 1}
  p: {type: prune, needs: [train], method: group_norm, amount: 1.0, finetune: {epochs: 1}}
  pp: {type: prune, needs: [train], method: group_norm, physical: true, amount: 0.75, finetune: {epochs: 1}}`},
		{name: "tokens", model: "tokens", train: 3, test: 1, batch: 1, stages: trainStage + `
  p: {type: prune, needs: [train], method: l1_unstructured, amount: 1.0, finetune: {epochs: 1}}
  q: {type: quantize, needs: [p], bits: 2}
  d: {type: distill, needs: [p], teacher: train}`},
		{name: "huge batch size", model: "conv", train: 5, test: 3, batch: 1 << 62, stages: `
  train: {type: train, epochs: 1, optimizer: {name: adam, lr: 0.01}, data: {shuffle: false}}
  whole: {type: train, epochs: 1, optimizer: {name: adam, lr: 0.01}, data: {shuffle: false, batch_size: 5}}
  q: {type: qat, needs: [train], calibration_batches: 4611686018427387904, batch_size: 4611686018427387904, data: {shuffle: false}}
  qwhole: {type: qat, needs: [train], calibration_batches: 1, data: {shuffle: false, batch_size: 5}}
  d: {type: distill, needs: [train], teacher: train, batch_size: 9223372036854775807}`, check: func(t *testing.T, m *runner.Manifest) {
			// A batch larger than the data is the whole data in one batch
			// (in file order here: a shuffle would only reorder its sums);
			// calibration batches past the data are all of it.
			same(t, m, "train", "whole", "loss", "accuracy")
			same(t, m, "q", "qwhole", "loss", "accuracy")
		}},
		{name: "huge lowrank rank", model: "mlp", train: 5, test: 3, stages: trainStage + `
  lr: {type: lowrank, needs: [train], rank: 4611686018427387904}
  lr2: {type: lowrank, needs: [train], ranks: {fc1: 9223372036854775807}}`},
		{name: "huge lora rank", model: "mlp", train: 5, test: 3, stages: trainStage + `
  l: {type: lora, needs: [train], targets: [fc1], r: 4611686018427387904}`,
			want: []string{"stages.l.r: layer fc1: an adapter of rank 4611686018427387904 would hold 5.07e+19 values", "lower r", "above 5 (the layer's min(out, in)) a rank adds nothing"}},
		{name: "distill temperature overflows its square", model: "mlp", train: 5, test: 3, stages: trainStage + `
  d: {type: distill, needs: [train], teacher: train, alpha: 0, temperature: 1e200}
  d2: {type: distill, needs: [train], teacher: train, alpha: 0.5, temperature: 1e-200, mode: online}`},
		{name: "norm p extremes", model: "conv", train: 5, test: 3, stages: trainStage + `
  big: {type: prune, needs: [train], method: ln_structured, amount: 0.5, n: 1e308}
  small: {type: prune, needs: [train], method: ln_structured, amount: 0.5, n: 1e-308}
  gbig: {type: prune, needs: [train], method: group_norm, physical: true, amount: 0.5, n: 1e308}
  gsmall: {type: prune, needs: [train], method: group_norm, target: {macs: 0.5}, n: 1e-308}`},
		{name: "lora alpha huge", model: "mlp", train: 5, test: 3, stages: trainStage + `
  l: {type: lora, needs: [train], targets: [fc1], alpha: 1e300, epochs: 2}`,
			want: []string{"stages.l.alpha: the adapters' scaling alpha / r = 1.25e+299 is +Inf in float32"}},
		{name: "lora alpha vanishing", model: "mlp", train: 5, test: 3, stages: trainStage + `
  l: {type: lora, needs: [train], targets: [fc1], alpha: 1e-300, rslora: true}`,
			want: []string{"stages.l.alpha: the adapters' scaling alpha / sqrt(r) = 3.54e-301 is 0 in float32"}},
		{name: "normalize std tiny", model: "mlp", train: 5, test: 3, stages: `
  train: {type: train, epochs: 1, data: {normalize: {mean: 0, std: 1e-40}}}`,
			failStage: "train", want: []string{"train.x", "becomes", "after normalize, (x - mean) / std: beyond float32", "data.normalize"}},
		{name: "normalize std below float32", model: "mlp", train: 5, test: 3, stages: `
  train: {type: train, epochs: 1, data: {normalize: {mean: 0, std: 1e-50}}}`,
			want: []string{"stages.train.data.normalize.std: std 1e-50 is 0 in float32"}},
		{name: "normalize mean beyond float32", model: "mlp", train: 5, test: 3, stages: `
  train: {type: train, epochs: 1, data: {normalize: {mean: [1e39], std: 1}}}`,
			want: []string{"normalize.mean", "float32 holds"}},
		{name: "validation split nearly all", model: "mlp", train: 5, test: 3, stages: `
  train: {type: train, epochs: 1, data: {validation_split: 0.999999}}`},
		{name: "degenerate settings are the plain ones", model: "conv", train: 5, test: 3, stages: `
  train: {type: train, epochs: 1, optimizer: {name: adam, lr: 0.01}}
  qat0: {type: qat, needs: [train], epochs: 0, calibration_batches: 100, data: {shuffle: false}}
  static: {type: quantize, needs: [train], mode: static, calibration_batches: 100, data: {shuffle: false}}
  e1: {type: lowrank, needs: [train], energy: 1.0}
  alpha1: {type: distill, needs: [train], alpha: 1, epochs: 1, data: {shuffle: false}}
  plain: {type: train, needs: [train], epochs: 1, data: {shuffle: false}}`, check: func(t *testing.T, m *runner.Manifest) {
			// QAT without epochs is static quantization; energy 1.0 keeps every
			// singular value (no layer shrinks, so none is factored); distillation
			// at alpha 1 is training on the labels.
			same(t, m, "qat0", "static", "accuracy", "loss", "size_bytes")
			same(t, m, "train", "e1", "accuracy", "loss", "params_total")
			same(t, m, "alpha1", "plain", "accuracy", "loss")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runEdgeCase(t, c) })
	}
}

// runEdgeCase writes the case's data and recipe into a temporary folder, runs
// it and checks the outcome against the case's.
func runEdgeCase(t *testing.T, c edgeCase) {
	t.Helper()
	dir := t.TempDir()
	mod, ok := edgeModels[c.model]
	if !ok {
		t.Fatalf("no model %q", c.model)
	}
	scale := c.scale
	if scale == 0 {
		scale = 1
	}
	if c.model == "tokens" {
		scale = -1
	}
	edgeData(t, dir, "x.npy", "y.npy", c.train, mod.shape, 1, scale)
	edgeData(t, dir, "xt.npy", "yt.npy", c.test, mod.shape, 2, scale)
	batch := c.batch
	if batch == 0 {
		batch = 4
	}
	src := fmt.Sprintf(`version: 1
name: edge
seed: 7
model: %s
data: {dataset: npy, train: {x: x.npy, y: y.npy}, test: {x: xt.npy, y: yt.npy}, batch_size: %d, eval_batch_size: 2}
stages:%s
`, mod.yaml, batch, c.stages)
	path := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.Load(path, stages.Default, pipeline.Options{})
	if c.failStage == "" && len(c.want) > 0 {
		if err == nil {
			t.Fatalf("the recipe was accepted; want it refused with %q\n%s", c.want, src)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("refused with\n%v\nwant it to say %q", err, w)
			}
		}
		return
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	logs := &testkit.LogBuffer{}
	runDir := filepath.Join(dir, "run")
	m, err := runner.New(stages.Default, r, runner.Options{RunDir: runDir, Jobs: 1, Log: zerolog.New(logs)}).Run(context.Background())
	if err != nil && !errors.Is(err, runner.ErrStageFailed) {
		t.Fatalf("%v\n%s", err, logs)
	}
	for _, s := range m.Stages {
		folder := filepath.Join(runDir, s.Folder)
		switch {
		case s.ID == c.failStage:
			if s.Status != "failed" {
				t.Errorf("stage %s %s; want it failed with %q", s.ID, s.Status, c.want)
				continue
			}
			for _, w := range c.want {
				if !strings.Contains(s.Error, w) {
					t.Errorf("stage %s failed with\n%s\nwant it to say %q", s.ID, s.Error, w)
				}
			}
			// A failed stage leaves no folder a later run or a reader could
			// take for its result.
			if _, err := os.Stat(filepath.Join(folder, "model.safetensors")); err == nil {
				t.Errorf("failed stage %s left %s", s.ID, folder)
			}
		case c.failStage != "" && s.Status == "skipped":
		case s.Status != "ran":
			t.Errorf("stage %s %s: %s\n%s", s.ID, s.Status, s.Error, logs)
		default:
			checkEdgeFolder(t, s, folder)
		}
	}
	if c.check != nil && !t.Failed() {
		c.check(t, m)
	}
}

// checkEdgeFolder checks that a stage that ran wrote its checkpoint and a
// metrics.json whose numbers are all finite, and that the manifest's
// metrics are those.
func checkEdgeFolder(t *testing.T, s *runner.StageRecord, folder string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(folder, "model.safetensors")); err != nil {
		t.Errorf("stage %s: %v", s.ID, err)
	}
	b, err := os.ReadFile(filepath.Join(folder, "metrics.json"))
	if err != nil {
		t.Fatalf("stage %s: %v", s.ID, err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("stage %s: metrics.json: %v\n%s", s.ID, err, b)
	}
	for _, k := range []string{"accuracy", "loss", "params_total", "test_samples"} {
		if _, ok := got[k]; !ok {
			t.Errorf("stage %s: metrics.json lacks %s: %s", s.ID, k, b)
		}
	}
	walkNumbers(s.Metrics, s.ID, func(key string, x float64) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Errorf("stage %s: metric %s is %v", s.ID, key, x)
		}
	})
	if acc, ok := got["accuracy"].(float64); ok && (acc < 0 || acc > 1) {
		t.Errorf("stage %s: accuracy %v", s.ID, acc)
	}
}

// walkNumbers calls f with every number in v (nested maps and lists, and
// structs through their JSON form), named by its key path.
func walkNumbers(v any, path string, f func(string, float64)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			walkNumbers(e, path+"."+k, f)
		}
	case []any:
		for i, e := range x {
			walkNumbers(e, fmt.Sprintf("%s.%d", path, i), f)
		}
	case float64:
		f(path, x)
	case float32:
		f(path, float64(x))
	case int, int64, string, bool, nil:
	default:
		// Structs (per-layer metrics) and typed maps: their JSON form.
		b, err := json.Marshal(x)
		if err != nil {
			f(path+" (not JSON: "+err.Error()+")", math.NaN())
			return
		}
		var y any
		if json.Unmarshal(b, &y) == nil {
			walkNumbers(y, path, f)
		}
	}
}

// edgeData writes n seeded samples of the given shape and their labels
// (0, 1, 2, 0, ...: every class present once there are three) as .npy files:
// inputs scaled by scale, or token ids 0..4 when scale is -1.
func edgeData(t *testing.T, dir, xname, yname string, n int, shape []int, seed uint64, scale float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	size := 1
	for _, d := range shape {
		size *= d
	}
	x := make([]float32, n*size)
	y := make([]int64, n)
	for i := range n {
		y[i] = int64(i % 3)
		for j := range size {
			x[i*size+j] = (float32(rng.NormFloat64()) + float32(y[i])) * scale
		}
	}
	xa := &npy.Array{Shape: append([]int{n}, shape...), Data: x}
	if scale == -1 {
		ids := make([]int64, len(x))
		for i := range ids {
			ids[i] = rng.Int64N(5)
		}
		xa.Data = ids
	}
	if err := npy.WriteFile(filepath.Join(dir, xname), xa); err != nil {
		t.Fatal(err)
	}
	if err := npy.WriteFile(filepath.Join(dir, yname), &npy.Array{Shape: []int{n}, Data: y}); err != nil {
		t.Fatal(err)
	}
}

// metric is a stage's metric at a dotted key path (layers.fc1.rank).
func metric(t *testing.T, m *runner.Manifest, id, path string) float64 {
	t.Helper()
	b, err := json.Marshal(m.Stage(id).Metrics)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range strings.Split(path, ".") {
		mv, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("stage %s has no metric %s", id, path)
		}
		v = mv[k]
	}
	x, ok := v.(float64)
	if !ok {
		t.Fatalf("stage %s: metric %s is %v, not a number", id, path, v)
	}
	return x
}

func wantMetric(t *testing.T, m *runner.Manifest, id, path string, want float64) {
	t.Helper()
	if got := metric(t, m, id, path); got != want {
		t.Errorf("stage %s: %s = %v, want %v", id, path, got, want)
	}
}

// same checks that two stages agree on the metrics.
func same(t *testing.T, m *runner.Manifest, a, b string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if x, y := metric(t, m, a, p), metric(t, m, b, p); x != y {
			t.Errorf("%s: %s %v, %s %v; want them equal", p, a, x, b, y)
		}
	}
}

// panicky is a stage type whose run panics, as a bug would.
type panicky struct{}

func (panicky) Run(*stages.Context) (*stages.Result, error) {
	panic("index out of range [3] with length 3")
}

// TestStagePanicFailsTheStage: a stage that panics fails alone, with an error
// that says it is a bug; the stage beside it finishes, run.json is written and
// the failed stage leaves no folder.
func TestStagePanicFailsTheStage(t *testing.T) {
	reg := stages.NewRegistry()
	train, _ := stages.Default.Get("train")
	reg.Register(train)
	reg.Register(stages.Type{Name: "boom", Summary: "panics", New: func() stages.Config { return &panicky{} }})
	dir := t.TempDir()
	path := filepath.Join(dir, "boom.yaml")
	src := `version: 1
name: boom
model: {arch: mlp, inputs: 4, hidden: [3], classes: 2}
data: {dataset: synthetic, features: 4, classes: 2, samples: 20, batch_size: 5}
stages:
  train: {type: train}
  boom: {type: boom, needs: [train]}
  after: {type: train, needs: [boom]}
  beside: {type: train, needs: [train]}
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.Load(path, reg, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.LogBuffer{}
	runDir := filepath.Join(dir, "run")
	m, err := runner.New(reg, r, runner.Options{RunDir: runDir, Jobs: 2, Log: zerolog.New(logs)}).Run(context.Background())
	if !errors.Is(err, runner.ErrStageFailed) {
		t.Fatalf("got %v, want ErrStageFailed\n%s", err, logs)
	}
	if got := statuses(m); got["train"] != "ran" || got["boom"] != "failed" || got["after"] != "skipped" || got["beside"] != "ran" {
		t.Errorf("statuses %v", got)
	}
	if e := m.Stage("boom").Error; !strings.Contains(e, "internal error, a bug in shrink") || !strings.Contains(e, "index out of range [3] with length 3") {
		t.Errorf("error %q", e)
	}
	if !strings.Contains(logs.String(), "runner_test.panicky.Run") {
		t.Errorf("the log lacks the panic's stack:\n%s", logs)
	}
	if _, err := os.Stat(filepath.Join(runDir, "boom")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the panicked stage left its folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(runDir, "run.json")); err != nil {
		t.Error(err)
	}
	if left, _ := filepath.Glob(filepath.Join(runDir, ".shrink", "store", "tmp", "boom-*")); len(left) > 0 {
		t.Errorf("work folders left: %v", left)
	}
}
