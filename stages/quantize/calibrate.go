package quantize

import (
	"math/rand/v2"

	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// Start is the model a quantize or qat stage works on: the stage's start model,
// its batch norms folded into the convolutions to quantize when fold is set
// (quantize; qat folds after training), with its layers marked (Mark) and, in
// static mode, their input ranges calibrated on the float model, as PyTorch
// calibrates a prepared model. It returns the batch norms folded.
func (s *Settings) Start(ctx *stages.Context, fold bool) (*model.Model, []*model.Layer, map[string]string, error) {
	m, err := ctx.Start()
	if err != nil {
		return nil, nil, nil, err
	}
	var folded map[string]string
	if fold {
		if folded, err = s.Fold(ctx, m); err != nil {
			return nil, nil, nil, err
		}
	}
	layers, err := s.Mark(m)
	if err != nil {
		return nil, nil, nil, err
	}
	if s.Mode == "static" {
		if err := s.Calibrate(ctx, m, layers); err != nil {
			return nil, nil, nil, err
		}
	}
	return m, layers, folded, nil
}

// Calibrate sets the static input ranges of layers from calibration_batches
// batches of the training split: data.batch_size rows each, in a permutation drawn
// from the recipe seed when data.shuffle is on (as a PyTorch DataLoader would hand
// them out), in file order otherwise; all rows when the split is smaller.
func (s *Settings) Calibrate(ctx *stages.Context, m *model.Model, layers []*model.Layer) error {
	ds, err := ctx.Dataset()
	if err != nil {
		return err
	}
	bs := ctx.DataConfig.BatchSize
	rows := calibrationRows(ds.Train, bs, s.CalibrationBatches, ctx.DataConfig.Shuffle,
		rand.New(stages.Stream(ctx.Seed, "calibrate:"+ctx.ID)))
	opt := model.CalibrateOptions{BatchSize: bs, Layers: []string{}}
	for _, l := range layers {
		opt.Layers = append(opt.Layers, l.Name)
	}
	if s.Observer == "percentile" {
		opt.Percentile = s.Percentile
	}
	ctx.Log.Info().Int("rows", rows.N).Str("observer", s.Observer).Msg("calibrating input ranges")
	return model.Calibrate(ctx, m, rows, opt)
}

// calibrationRows copies the first batches*bs rows of an epoch's order out of s.
func calibrationRows(s *data.Split, bs, batches int, shuffle bool, rng *rand.Rand) *data.Split {
	b := data.NewBatcher(s, bs, shuffle)
	b.Epoch(rng)
	n := s.N
	if batches <= s.N/bs { // else they cover the split; batches*bs may overflow
		n = batches * bs
	}
	out := &data.Split{X: make([]float32, n*s.Features), Y: make([]int32, n), N: n, Features: s.Features}
	for i, r := range b.Order()[:n] {
		copy(out.Row(i), s.Row(int(r)))
		out.Y[i] = s.Y[r]
	}
	return out
}
