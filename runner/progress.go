package runner

import "github.com/shrink-ml/shrink/model"

// progress is a stage's progress sink that draws only while the stage is the
// only one executing: two bars on one terminal line would garble each other,
// and the log lines (each carrying its stage id) tell parallel stages apart.
func (ex *execution) progress(stage string) func(model.Progress) {
	sink := ex.r.opt.Progress(stage)
	return func(p model.Progress) {
		if ex.running.Load() == 1 {
			sink(p)
		}
	}
}
