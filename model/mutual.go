package model

import (
	"fmt"
	"math/rand/v2"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Deep mutual learning (Zhang et al., 2018) trains two models on the same batches,
// each from the labels and the other's softened predictions. Both models live in
// one graph over one input buffer, so a single run computes both forward passes,
// both losses (each against the other's current logits, held constant) and every
// parameter's gradient; one optimizer then steps both parameter lists, which for
// Adam and SGD is the same as two optimizers with the same settings.

// peerScope prefixes the peer's node names and its activation quantizers' keys
// in the training state.
const peerScope = "peer/"

// buildTrainNet compiles the training graph: the model alone, or with its peer.
func buildTrainNet(m *Model, opt TrainOptions, rng *rand.Rand) (*Net, error) {
	no := NetOptions{Batch: opt.BatchSize, Mode: ModeTrain, Loss: opt.Loss, Rand: rng}
	if opt.Peer == nil {
		return Build(m, no)
	}
	if opt.Teacher != nil {
		return nil, fmt.Errorf("mutual learning takes its teacher signal from the peer: set Teacher or Peer, not both")
	}
	return buildMutual(m, opt.Peer, no)
}

// buildMutual compiles m and peer into one training graph with the mutual loss.
// opt.Loss gives the temperature and the weight of the labels for both.
func buildMutual(m, peer *Model, opt NetOptions) (*Net, error) {
	if m.Spec.Classes != peer.Spec.Classes {
		return nil, fmt.Errorf("mutual learning: the model has %d classes, its peer %d", m.Spec.Classes, peer.Spec.Classes)
	}
	if a, b := m.Spec.Features(), peer.Spec.Features(); a != b {
		return nil, fmt.Errorf("mutual learning: the model takes %d inputs per sample, its peer %d", a, b)
	}
	g := G.NewGraph()
	n := newNet(m, opt, g, "")
	p := newNet(peer, opt, g, peerScope)
	x, err := n.forward(make([]float32, prod(n.inputShape())))
	if err != nil {
		return nil, err
	}
	// The peer reads the same rows, in its own input shape (an mlp's [784] or
	// lenet5's [1, 28, 28]).
	px, err := p.forward(n.X)
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	labels := n.labelsNode()
	loss := opt.Loss
	loss.Distill = true
	n.mutual = &mutualLossOp{opBase: newBase("mutualLoss"), loss: loss}
	out, err := G.ApplyOp(n.mutual, n.logits, labels, p.logits)
	if err != nil {
		return nil, err
	}
	n.peer = p
	n.params = append(n.params, p.params...)
	for name, op := range p.inputQ {
		n.inputQ[peerScope+name] = op
	}
	if err := n.compileTrain(out, G.Nodes{x, px, labels}); err != nil {
		return nil, err
	}
	return n, nil
}

// PeerLoss is the peer's loss in the last Run (zero without a peer).
func (n *Net) PeerLoss() LossValue {
	if n.mutual == nil {
		return LossValue{}
	}
	return n.mutual.last[1]
}

// mutualLossOp takes the model's logits, the labels and the peer's logits. Each
// side's loss is the distillation loss against the other side's logits, which
// count as constants; the op's value is their sum, and each side's gradient is
// that of its own loss.
type mutualLossOp struct {
	opBase
	loss   Loss
	last   [2]LossValue // the model's, the peer's
	grad   [2]*tensor.Dense
	scalar G.F32
}

func (o *mutualLossOp) Arity() int { return 3 }
func (o *mutualLossOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(1), tensorOf(2), tA)
}
func (o *mutualLossOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}

func (o *mutualLossOp) Do(in ...G.Value) (G.Value, error) {
	s := dims(in[0])
	own, peer, labels := f32(in[0]), f32(in[2]), f32(in[1])
	gOwn, gPeer := buffer(&o.grad[0], s...), buffer(&o.grad[1], s...)
	o.last[0] = o.loss.Compute(own, peer, labels, s[1], f32(gOwn))
	o.last[1] = o.loss.Compute(peer, own, labels, s[1], f32(gPeer))
	o.scalar = G.F32(o.last[0].Loss + o.last[1].Loss)
	return &o.scalar, nil
}

func (o *mutualLossOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	d[0], d[2] = true, true
	return d
}

func (o *mutualLossOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	out := make(G.Nodes, len(inputs))
	for side, i := range []int{0, 2} {
		d, err := G.ApplyOp(&scaledGradOp{opBase: newBase(fmt.Sprintf("mutualGrad%d", side)), src: &o.grad[side]}, inputs[i], grad)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}
