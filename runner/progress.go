package runner

import "github.com/shrink-ml/shrink/model"

// progress is a stage's progress sink. Parallel stages each report to their
// own sink; the sink tells them apart by stage and draws them side by side.
func (ex *execution) progress(stage string) func(model.Progress) {
	return ex.r.opt.Progress(stage)
}

// progressDone tells a stage's sink the stage has ended (a Progress with
// Epochs 0), so its bar goes.
func (ex *execution) progressDone(stage string) {
	if ex.r.opt.Progress != nil {
		ex.r.opt.Progress(stage)(model.Progress{})
	}
}
