package runner

import "github.com/shrink-ml/shrink/model"

// progressDone tells a stage's sink the stage has ended (a Progress with
// Epochs 0), so its bar goes.
func (ex *execution) progressDone(stage string) {
	if ex.r.opt.Progress != nil {
		ex.r.opt.Progress(stage)(model.Progress{})
	}
}
