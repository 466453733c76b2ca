package model

import (
	"fmt"
	"math"

	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/internal/vec"
)

// OptimizerConfig is a recipe's optimizer: `optimizer: {name: adam, lr: 0.001}`.
type OptimizerConfig struct {
	Name        string  `json:"name" enum:"adam,sgd" doc:"adam or sgd (PyTorch's semantics: L2 weight decay added to the gradient)"`
	LR          float64 `json:"lr" exclusiveMinimum:"0" doc:"learning rate"`
	Momentum    float64 `json:"momentum" minimum:"0" exclusiveMaximum:"1" doc:"sgd: momentum"`
	WeightDecay float64 `json:"weight_decay" minimum:"0" doc:"L2 penalty added to the gradient"`
	Beta1       float64 `json:"beta1" minimum:"0" exclusiveMaximum:"1" doc:"adam: decay of the first moment"`
	Beta2       float64 `json:"beta2" minimum:"0" exclusiveMaximum:"1" doc:"adam: decay of the second moment"`
	Eps         float64 `json:"eps" exclusiveMinimum:"0" doc:"adam: added to the denominator; at least 1.4e-45, which float32 does not round to 0 (else a weight without gradient becomes 0/0)"`
	// LRDecay multiplies the learning rate after every epoch (1: constant).
	LRDecay float64 `json:"lr_decay" exclusiveMinimum:"0" maximum:"1" doc:"multiplies the learning rate after every epoch (1 keeps it constant)"`
}

// DefaultOptimizer is Adam at PyTorch's defaults.
func DefaultOptimizer() OptimizerConfig {
	return OptimizerConfig{Name: "adam", LR: 0.001, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, LRDecay: 1}
}

// Validate refuses values float32, the precision of the update, cannot hold:
// an lr, weight_decay or eps above 3.4e38 is infinite there (the update is NaN,
// or nothing), and an Adam eps below 1.4e-45 is 0, so a weight whose gradient
// is 0 (pruned, or behind a dead ReLU) would be updated by 0/0, a NaN, as it
// would be in PyTorch.
func (c *OptimizerConfig) Validate() error {
	var errs config.Errors
	for _, k := range []struct {
		key string
		v   float64
	}{{"lr", c.LR}, {"weight_decay", c.WeightDecay}, {"eps", c.Eps}} {
		if math.IsInf(float64(float32(k.v)), 0) {
			errs = append(errs, config.Errorf(k.key, "%g is +Inf in float32, where the optimizer computes: use at most 3.4e38 (and far less: the update would be NaN or nothing)", k.v))
		}
	}
	if c.Name == "adam" && float32(c.Eps) == 0 {
		errs = append(errs, config.Errorf("eps", "%g is 0 in float32, where Adam divides by sqrt(v) + eps: a weight with no gradient would become NaN; use at least %g (PyTorch's default is 1e-8)",
			c.Eps, math.SmallestNonzeroFloat32))
	}
	return errs.Err()
}

// OptState is an optimizer's state: what resuming mid-stage needs.
type OptState struct {
	Step    int         `json:"step"`
	LR      float64     `json:"lr"`
	Moments [][]float32 `json:"-"` // adam: m then v per parameter; sgd: momentum buffers
}

// Optimizer updates parameters in place, one fused pass per tensor. Masked entries
// get a zero gradient, so their moments stay zero and pruned weights stay zero.
type Optimizer struct {
	cfg   OptimizerConfig
	State OptState
}

// NewOptimizer makes an optimizer for params.
func NewOptimizer(cfg OptimizerConfig, params []*Param) (*Optimizer, error) {
	o := &Optimizer{cfg: cfg, State: OptState{LR: cfg.LR}}
	per := 1
	switch cfg.Name {
	case "adam":
		per = 2
	case "sgd":
		if cfg.Momentum == 0 {
			per = 0
		}
	default:
		return nil, fmt.Errorf("unknown optimizer %q", cfg.Name)
	}
	for _, p := range params {
		for i := 0; i < per; i++ {
			o.State.Moments = append(o.State.Moments, make([]float32, len(p.Data)))
		}
	}
	return o, nil
}

// Step applies one update from the params' gradients.
func (o *Optimizer) Step(params []*Param) {
	o.State.Step++
	switch o.cfg.Name {
	case "adam":
		o.adam(params)
	default:
		o.sgd(params)
	}
}

// EndEpoch applies the learning-rate decay.
func (o *Optimizer) EndEpoch() {
	if o.cfg.LRDecay > 0 {
		o.State.LR *= o.cfg.LRDecay
	}
}

// adam follows torch.optim.Adam (single-tensor path) in float32.
func (o *Optimizer) adam(params []*Param) {
	c := o.cfg
	t := float64(o.State.Step)
	bc1 := 1 - math.Pow(c.Beta1, t)
	bc2 := 1 - math.Pow(c.Beta2, t)
	stepSize := float32(o.State.LR / bc1)
	bc2Sqrt := float32(math.Sqrt(bc2))
	b1, b2 := float32(c.Beta1), float32(c.Beta2)
	k := vec.Consts{B1: b1, OneMinusB1: 1 - b1, B2: b2, OneMinusB2: 1 - b2,
		WeightDecay: float32(c.WeightDecay), Eps: float32(c.Eps), StepSize: stepSize, Bc2Sqrt: bc2Sqrt}
	for i, p := range params {
		vec.Adam(p.Data, p.Grad(), o.State.Moments[2*i], o.State.Moments[2*i+1], p.Mask, &k)
	}
}

// sgd follows torch.optim.SGD (dampening 0, not Nesterov).
func (o *Optimizer) sgd(params []*Param) {
	lr, mu, wd := float32(o.State.LR), float32(o.cfg.Momentum), float32(o.cfg.WeightDecay)
	for i, p := range params {
		w, g := p.Data, p.Grad()
		var buf []float32
		if mu != 0 {
			buf = o.State.Moments[i]
		}
		first := o.State.Step == 1
		for j := range w {
			d := g[j] + wd*w[j]
			if p.Mask != nil {
				d *= p.Mask[j]
			}
			if buf != nil {
				if first {
					buf[j] = d
				} else {
					buf[j] = mu*buf[j] + d
				}
				d = buf[j]
			}
			w[j] -= lr * d
		}
	}
}
