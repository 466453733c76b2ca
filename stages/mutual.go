package stages

import "github.com/shrink-ml/shrink/model"

// TrainMutual trains m and peer together by deep mutual learning (the online
// distill stage): on the same batches, each learns from the labels and from the
// other's current logits with loss's temperature and alpha. Like Train it resumes
// from the last finished epoch; the saved state holds both models (the peer's
// tensors under "peer/" names).
func (c *Context) TrainMutual(phase string, m, peer *model.Model, t Training, loss model.Loss) error {
	return c.train(phase, m, peer, t, loss, nil)
}
