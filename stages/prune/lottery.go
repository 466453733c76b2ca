package prune

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// Round is one round of the lottery ticket, as written to round-NN/metrics.json
// and listed in the stage's metrics. Round 0 is the first, dense training.
type Round struct {
	Round       int                `json:"round"`
	WeightsLeft float64            `json:"weights_left"` // share of all weights unpruned
	WeightsKept int                `json:"weights_kept"`
	LayerLeft   map[string]float64 `json:"layer_weights_left"`
	TestAcc     float64            `json:"test_accuracy"`
	TestLoss    float64            `json:"test_loss"`
	ValAcc      *float64           `json:"val_accuracy,omitempty"`
	// The random-reinitialization control: the same masks trained from fresh
	// random weights.
	ReinitTestAcc *float64 `json:"reinit_test_accuracy,omitempty"`
	ReinitValAcc  *float64 `json:"reinit_val_accuracy,omitempty"`
}

// runLottery is Frankle & Carbin's iterative magnitude pruning: train the dense
// model, then each round prune rate of every layer's remaining weights (the
// output layer at output_rate), rewind the survivors and retrain. Every round's
// model and metrics go to round-NN/ in the stage folder.
func (c *Config) runLottery(ctx *stages.Context) (*stages.Result, error) {
	ds, err := ctx.Dataset()
	if err != nil {
		return nil, err
	}
	if c.Select == "best_val" && ds.Val == nil {
		return nil, fmt.Errorf("select: best_val picks the round by validation accuracy: set data.validation_split (for example 0.1)")
	}
	m, err := ctx.Start()
	if err != nil {
		return nil, err
	}
	layers, err := m.Select(c.Layers)
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	all := m.WeightLayers()
	output := all[len(all)-1]
	lt := &lottery{cfg: c, ctx: ctx, ds: ds}

	rewindTo, err := lt.trainDense(m)
	if err != nil {
		return nil, err
	}
	rounds := []Round{}
	r0, err := lt.record(0, m, nil)
	if err != nil {
		return nil, err
	}
	rounds = append(rounds, r0)
	best, bestRound := m.Clone(), 0
	for r := 1; r <= c.Rounds; r++ {
		for _, l := range layers {
			rate := c.Rate
			if l == output {
				rate = c.outputRate()
			}
			if _, err := l1Unstructured(tensorsOf([]*model.Layer{l}), Fraction(rate)); err != nil {
				return nil, err
			}
		}
		rewind(m, rewindTo)
		var control *model.Model
		if c.Control == "random_reinit" {
			rng := rand.New(stages.Stream(ctx.Seed, fmt.Sprintf("lottery-reinit:%s:%d", ctx.ID, r)))
			control = reinitialized(m, rng)
		}
		if err := ctx.Train(roundName(r), m, c.Train, model.Loss{}, nil); err != nil {
			return nil, fmt.Errorf("round %d: %w", r, err)
		}
		if control != nil {
			if err := ctx.Train(roundName(r)+"-reinit", control, c.Train, model.Loss{}, nil); err != nil {
				return nil, fmt.Errorf("round %d, random reinitialization: %w", r, err)
			}
		}
		res, err := lt.record(r, m, control)
		if err != nil {
			return nil, err
		}
		rounds = append(rounds, res)
		// At equal validation accuracy the later, sparser round wins.
		if c.Select == "last" || bestRound == 0 || *res.ValAcc >= *rounds[bestRound].ValAcc {
			best, bestRound = m.Clone(), r
		}
	}
	metrics := map[string]any{
		"method": c.Method, "rounds": rounds, "selected_round": bestRound, "rewind": c.Rewind.String(),
		"dense_test_accuracy": r0.TestAcc,
	}
	s := measureSparsity(best)
	s.addTo(metrics)
	s.log(ctx.Log.Info().Int("selected_round", bestRound), "lottery ticket chosen")
	return &stages.Result{Model: best, Metrics: metrics}, nil
}

// lottery is one lottery-ticket run's shared state.
type lottery struct {
	cfg *Config
	ctx *stages.Context
	ds  *data.Dataset
}

func roundName(r int) string { return fmt.Sprintf("round-%02d", r) }

// trainDense trains the start model (round 0) and returns the weights rounds
// rewind to: the start model's (init), or a copy taken after epoch K.
func (lt *lottery) trainDense(m *model.Model) (*model.Model, error) {
	ctx, k := lt.ctx, lt.cfg.Rewind.Epoch
	if k == 0 {
		init := m.Clone()
		return init, ctx.Train(roundName(0), m, lt.cfg.Train, model.Loss{}, nil)
	}
	// The snapshot is taken when epoch K's last batch is done, through the
	// progress callback (the one hook the training loop offers mid-phase); it is
	// kept in StateDir so a run resumed past epoch K still has it.
	saved := ""
	if ctx.StateDir != "" {
		saved = filepath.Join(ctx.StateDir, "lottery-rewind.safetensors")
	}
	var snap *model.Model
	var snapErr error
	progress := ctx.Progress
	ctx.Progress = func(p model.Progress) {
		if p.Epoch == k && p.Batch == p.Batches && snap == nil {
			snap = m.Clone()
			if saved != "" {
				snapErr = saveSealed(snap, saved, map[string]string{"rewind_epoch": strconv.Itoa(k)})
			}
		}
		if progress != nil {
			progress(p)
		}
	}
	err := ctx.Train(roundName(0), m, lt.cfg.Train, model.Loss{}, nil)
	ctx.Progress = progress
	if err != nil {
		return nil, err
	}
	if snapErr != nil {
		return nil, fmt.Errorf("saving the rewind point: %w", snapErr)
	}
	if snap == nil && saved != "" {
		// Resumed past epoch K: the snapshot was saved by the interrupted run.
		loaded, err := loadSealed(saved)
		if err != nil {
			return nil, fmt.Errorf("the weights after epoch %d (the rewind point) are not available: %w; rerun with --force", k, err)
		}
		snap = loaded
	}
	if snap == nil {
		return nil, fmt.Errorf("internal error: no snapshot after epoch %d", k)
	}
	return snap, nil
}

// record evaluates a round's model (and control), writes round-NN/ and logs it.
func (lt *lottery) record(r int, m, control *model.Model) (Round, error) {
	ctx := lt.ctx
	s := measureSparsity(m)
	res := Round{Round: r, WeightsLeft: s.WeightsLeft(), WeightsKept: s.Kept, LayerLeft: map[string]float64{}}
	for name, sp := range s.Layers {
		res.LayerLeft[name] = stages.Round6(1 - sp)
	}
	var err error
	if res.TestAcc, res.TestLoss, res.ValAcc, err = lt.evaluate(m); err != nil {
		return res, err
	}
	dir := filepath.Join(ctx.Dir, roundName(r))
	meta := map[string]string{"stage": ctx.ID, "round": strconv.Itoa(r)}
	if err := saveModel(m, filepath.Join(dir, "model.safetensors"), meta); err != nil {
		return res, err
	}
	if control != nil {
		acc, _, val, err := lt.evaluate(control)
		if err != nil {
			return res, err
		}
		res.ReinitTestAcc, res.ReinitValAcc = &acc, val
		if err := saveModel(control, filepath.Join(dir, "reinit.safetensors"), meta); err != nil {
			return res, err
		}
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "metrics.json"), append(b, '\n'), 0o644); err != nil {
		return res, err
	}
	ev := ctx.Log.Info().Int("round", r).Float64("weights_left", res.WeightsLeft).Float64("test_accuracy", res.TestAcc)
	if res.ValAcc != nil {
		ev = ev.Float64("val_accuracy", *res.ValAcc)
	}
	if res.ReinitTestAcc != nil {
		ev = ev.Float64("reinit_test_accuracy", *res.ReinitTestAcc)
	}
	ev.Msg("round done")
	return res, nil
}

// evaluate measures a model on the test split and, when there is one, the
// validation split.
func (lt *lottery) evaluate(m *model.Model) (acc, loss float64, val *float64, err error) {
	bs := lt.ctx.DataConfig.EvalBatchSize
	t, err := model.Evaluate(lt.ctx, m, lt.ds.Test, bs)
	if err != nil {
		return 0, 0, nil, err
	}
	if lt.ds.Val != nil {
		v, err := model.Evaluate(lt.ctx, m, lt.ds.Val, bs)
		if err != nil {
			return 0, 0, nil, err
		}
		val = &v.Accuracy
	}
	return t.Accuracy, stages.Round6(t.Loss), val, nil
}

// rewind resets every weight, bias and buffer (batch norm's statistics) to
// src's values, then zeroes the pruned ones: the survivors start the round
// where src had them.
func rewind(m, src *model.Model) {
	for i, l := range m.Layers {
		s := src.Layers[i]
		for _, set := range [][2][]*model.Weight{{l.Weights, s.Weights}, {l.Params, s.Params}, {l.Buffers, s.Buffers}} {
			for j, w := range set[0] {
				copy(w.Data, set[1][j].Data)
			}
		}
		for j, k := range l.Counters {
			k.Value = s.Counters[j].Value
		}
	}
	m.ApplyMasks()
}

// reinitialized is m with the same masks and fresh weights (model.Reinit).
func reinitialized(m *model.Model, rng *rand.Rand) *model.Model {
	c := m.Clone()
	c.Reinit(rng)
	c.ApplyMasks()
	return c
}

// saveSealed writes mid-stage state, sealed with a digest of its content
// (checkpoint.Seal): a resumed run refuses a file that changed since.
func saveSealed(m *model.Model, path string, meta map[string]string) error {
	f, err := m.ToFile(meta)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	checkpoint.Seal(f)
	_, err = checkpoint.WriteFile(path, f)
	return err
}

// loadSealed reads what saveSealed wrote, verifying its seal.
func loadSealed(path string) (*model.Model, error) {
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := checkpoint.CheckSeal(f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return model.FromFile(f, nil)
}

// saveModel writes a checkpoint, making its folder first.
func saveModel(m *model.Model, path string, meta map[string]string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	_, err := m.Save(path, meta)
	return err
}
