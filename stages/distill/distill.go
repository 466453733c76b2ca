// Package distill is the distill stage: knowledge distillation from a teacher
// model into a student, with the loss
//
//	alpha * CE(s, y) + (1 - alpha) * KL(softmax(t/T) || softmax(s/T)) * T^2
//
// (KL with 'batchmean' reduction). The student is the needs model, keeping its
// compression (masks, quantization, factors), or a new architecture trained from
// scratch (student: {arch: mlp, hidden: [30]}). Offline, the teacher is frozen and
// its logits over the training split are computed once and cached; online (deep
// mutual learning), teacher and student train together and both are kept.
package distill

import (
	"fmt"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
)

// Modes of distillation.
const (
	Offline = "offline"
	Online  = "online"
)

func init() {
	stages.Register(stages.Type{
		Name:    "distill",
		Summary: "knowledge distillation: train a student (the needs model, or a new architecture) from a teacher's softened logits and the labels",
		New: func() stages.Config {
			return &Config{Temperature: 4, Alpha: 0.5, Mode: Offline, Training: stages.DefaultTraining(1)}
		},
	})
}

// Config is the distill stage's keys.
type Config struct {
	Teacher           string  `json:"teacher,omitempty" doc:"the stage whose output model teaches (an edge of the DAG); or use teacher_checkpoint"`
	TeacherCheckpoint string  `json:"teacher_checkpoint,omitempty" doc:"a checkpoint file holding the teacher (relative to the recipe; a PyTorch state_dict is read with the recipe's model section); or use teacher"`
	Temperature       float64 `json:"temperature" exclusiveMinimum:"0" doc:"T: both models' logits are divided by T before the softmax of the KL term, which is then multiplied by T^2"`
	Alpha             float64 `json:"alpha" minimum:"0" maximum:"1" doc:"weight of the cross-entropy with the labels; the KL to the teacher gets 1 - alpha (alpha 1 is label-only training and needs no teacher)"`
	Mode              string  `json:"mode" enum:"offline,online" doc:"offline: the teacher is frozen and its logits are computed once and cached; online: deep mutual learning, teacher and student train together and both are kept (the teacher as <stage>/teacher.safetensors)"`
	stages.Training
	Student *Student `json:"student,omitempty" doc:"a new student architecture trained from scratch (initial weights from the recipe seed), e.g. {arch: mlp, hidden: [30]}; inputs, classes and arch default to the recipe model's; then needs is omitted. Default: the needs model (or the recipe's model)"`
}

var (
	_ config.Validator    = (*Config)(nil)
	_ config.Referrer     = (*Config)(nil)
	_ config.FileReferrer = (*Config)(nil)
	_ pipeline.DataUser   = (*Config)(nil)
	_ pipeline.ModelMaker = (*Config)(nil)
	_ pipeline.ArchMaker  = (*Config)(nil)
)

// Validate checks that the teacher is named once, and named at all when the
// loss uses it.
func (c *Config) Validate() error {
	switch {
	case c.Teacher != "" && c.TeacherCheckpoint != "":
		return config.Errorf("teacher_checkpoint", "name the teacher once: teacher (a stage id) or teacher_checkpoint (a file), not both")
	case c.Teacher == "" && c.TeacherCheckpoint == "" && c.usesTeacher():
		why := fmt.Sprintf("alpha %s gives the teacher's logits weight %s", config.FormatNumber(c.Alpha), config.FormatNumber(1-c.Alpha))
		if c.Mode == Online {
			why = "online distillation trains the teacher alongside the student"
		}
		return config.Errorf("teacher", "missing: %s; name the stage whose model teaches (teacher: train) or a checkpoint file (teacher_checkpoint: teacher.safetensors)", why)
	}
	return nil
}

// usesTeacher says whether training consults the teacher: always online;
// offline unless alpha is 1 (label-only training).
func (c *Config) usesTeacher() bool { return c.Mode == Online || c.Alpha < 1 }

// References makes the teacher stage an edge of the DAG.
func (c *Config) References() []config.Ref {
	if c.Teacher == "" {
		return nil
	}
	return []config.Ref{{Path: "teacher", Stage: c.Teacher}}
}

// FileReferences makes the teacher checkpoint's digest part of the stage's key.
func (c *Config) FileReferences() []config.FileRef {
	if c.TeacherCheckpoint == "" {
		return nil
	}
	return []config.FileRef{{Path: "teacher_checkpoint", File: c.TeacherCheckpoint}}
}

// UsesData reports that distillation trains on the data.
func (c *Config) UsesData() bool { return true }

// OutputArch is the student's architecture, when the stage builds one.
func (c *Config) OutputArch(recipe arch.Spec) (arch.Spec, bool) {
	if c.Student == nil {
		return arch.Spec{}, false
	}
	return *c.Student.spec(recipe), true
}

// MakesModel reports that a stage with a student architecture builds its model
// rather than transforming an input.
func (c *Config) MakesModel() bool { return c.Student != nil }

// Run distills the teacher into the student.
func (c *Config) Run(ctx *stages.Context) (*stages.Result, error) {
	student, err := c.student(ctx)
	if err != nil {
		return nil, err
	}
	t, err := c.teacher(ctx)
	if err != nil {
		return nil, err
	}
	if t != nil && t.model.Spec.Classes != student.Spec.Classes {
		return nil, fmt.Errorf("the teacher (%s) has %d classes and the student %d: they must predict the same classes", t.name, t.model.Spec.Classes, student.Spec.Classes)
	}
	metrics := map[string]any{"mode": c.Mode, "temperature": c.Temperature, "alpha": c.Alpha, "epochs": c.Epochs}
	if t != nil {
		metrics["teacher"] = t.name
	}
	if c.Mode == Online {
		return c.online(ctx, student, t, metrics)
	}
	return c.offline(ctx, student, t, metrics)
}

// loss is the distillation loss the keys describe.
func (c *Config) loss() model.Loss {
	return model.Loss{Distill: true, Temperature: c.Temperature, Alpha: c.Alpha}
}
