package distill

import (
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// offline trains the student against the frozen teacher's cached logits.
func (c *Config) offline(ctx *stages.Context, student *model.Model, t *teacher, metrics map[string]any) (*stages.Result, error) {
	loss := model.Loss{} // cross-entropy alone: alpha 1, or nothing to train
	var teacherRows func([]int32, []float32) error
	if t != nil && c.Alpha < 1 && c.Epochs > 0 {
		ds, err := ctx.Dataset()
		if err != nil {
			return nil, err
		}
		logits, _, err := cachedLogits(ctx, t, ds.Train, evalBatch(ctx))
		if err != nil {
			return nil, err
		}
		loss = c.loss()
		teacherRows = rowsOf(logits, t.model.Spec.Classes)
	} else if c.Alpha == 1 {
		ctx.Log.Info().Msg("alpha is 1: training on the labels alone, the teacher is not consulted")
	}
	if err := ctx.Train("distill", student, c.Training, loss, teacherRows); err != nil {
		return nil, err
	}
	if t != nil {
		acc, err := teacherAccuracy(ctx, t)
		if err != nil {
			return nil, err
		}
		metrics["teacher_accuracy"] = acc
	}
	return &stages.Result{Model: student, Metrics: metrics}, nil
}

// online trains teacher and student together by deep mutual learning; the
// trained teacher is kept beside the student.
func (c *Config) online(ctx *stages.Context, student *model.Model, t *teacher, metrics map[string]any) (*stages.Result, error) {
	start, err := teacherAccuracy(ctx, t)
	if err != nil {
		return nil, err
	}
	peer := t.model.Clone()
	if err := ctx.TrainMutual("distill-online", student, peer, c.Training, c.loss()); err != nil {
		return nil, err
	}
	ds, err := ctx.Dataset()
	if err != nil {
		return nil, err
	}
	res, err := model.Evaluate(ctx, peer, ds.Test, evalBatch(ctx))
	if err != nil {
		return nil, err
	}
	metrics["teacher_accuracy_start"] = start
	metrics["teacher_accuracy"] = res.Accuracy
	metrics["teacher_loss"] = stages.Round6(res.Loss)
	return &stages.Result{Model: student, Metrics: metrics, Extra: map[string]*model.Model{"teacher": peer}}, nil
}

// teacherAccuracy is the teacher's test accuracy as its stage measured it, or
// measured here for a checkpoint file.
func teacherAccuracy(ctx *stages.Context, t *teacher) (any, error) {
	if t.accuracy != nil {
		return t.accuracy, nil
	}
	ds, err := ctx.Dataset()
	if err != nil {
		return nil, err
	}
	res, err := model.Evaluate(ctx, t.model, ds.Test, evalBatch(ctx))
	if err != nil {
		return nil, err
	}
	return res.Accuracy, nil
}

// evalBatch is the batch size of evaluation passes: data.eval_batch_size, or
// its default for a context built without a data section (tests).
func evalBatch(ctx *stages.Context) int {
	if ctx.DataConfig != nil && ctx.DataConfig.EvalBatchSize > 0 {
		return ctx.DataConfig.EvalBatchSize
	}
	return data.DefaultConfig().EvalBatchSize
}
