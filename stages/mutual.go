package stages

import "github.com/shrink-ml/shrink/model"

// TrainMutual trains m and peer together by deep mutual learning (the online
// distill stage): on the same batches, each learns from the labels and from the
// other's current logits with loss's temperature and alpha. Like Train it resumes
// from the last finished epoch; the saved state holds both models.
func (c *Context) TrainMutual(phase string, m, peer *model.Model, t Training, loss model.Loss) error {
	return c.train(phase, m, peer, t, loss, nil)
}

// jointState views two models as one for the training-state file: m's layers,
// then the peer's under "peer/" names. The views share the models' slices, so
// restoring the state writes into both models.
func jointState(m, peer *model.Model) *model.Model {
	joint := &model.Model{Spec: m.Spec, Layers: append([]*model.Layer(nil), m.Layers...)}
	for _, l := range peer.Layers {
		v := *l
		v.Name = "peer/" + l.Name
		v.Weights = nil
		for _, w := range l.Weights {
			wv := *w
			wv.Name = "peer/" + w.Name
			v.Weights = append(v.Weights, &wv)
		}
		joint.Layers = append(joint.Layers, &v)
	}
	return joint
}
