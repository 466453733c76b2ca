package distill

import (
	"fmt"

	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// teacher is the model that teaches and what identifies it.
type teacher struct {
	model *model.Model
	// name is the stage id or the checkpoint path, for logs and metrics.
	name string
	// digest is the sha256 of the teacher's checkpoint file: it keys the cached
	// logits.
	digest string
	// accuracy is the teacher's test accuracy when its stage measured it.
	accuracy any
}

// teacher loads the teacher the config names; nil when it names none (alpha 1).
func (c *Config) teacher(ctx *stages.Context) (*teacher, error) {
	switch {
	case c.Teacher != "":
		id := ctx.Refs["teacher"]
		m := ctx.Inputs[id]
		if m == nil {
			return nil, fmt.Errorf("teacher: the model of stage %q was not handed to this stage", c.Teacher)
		}
		t := &teacher{model: m, name: id, digest: ctx.InputDigests[id]}
		if mt := ctx.InputMetrics[id]; mt != nil {
			t.accuracy = mt["accuracy"]
		}
		return t, nil
	case c.TeacherCheckpoint != "":
		digest := ctx.FileDigests["teacher_checkpoint"]
		if digest == "" {
			return nil, fmt.Errorf("teacher_checkpoint: the file's digest was not handed to this stage")
		}
		m, err := ctx.LoadCheckpoint(c.TeacherCheckpoint)
		if err != nil {
			return nil, fmt.Errorf("teacher_checkpoint: %w", err)
		}
		return &teacher{model: m, name: c.TeacherCheckpoint, digest: digest}, nil
	}
	return nil, nil
}
