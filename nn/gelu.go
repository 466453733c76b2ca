package nn

import (
	"math"

	G "gorgonia.org/gorgonia"

	"github.com/shrink-ml/shrink/arch"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "gelu",
		Summary: "nn.GELU: x·Φ(x) with the normal CDF exact (approximate: none) or by tanh (approximate: tanh)",
		New:     func() arch.Layer { return &GELU{Approximate: "none"} },
	})
}

// GELU is nn.GELU.
type GELU struct {
	activation
	Approximate string `json:"approximate" enum:"none,tanh" doc:"none: the exact 0.5·x·(1 + erf(x/√2)); tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))"`
}

func (g *GELU) Build(b Builder, in []*G.Node) (*G.Node, error) {
	if g.Approximate == "tanh" {
		return buildPointwise(b, geluTanhFn, in[0])
	}
	return buildPointwise(b, geluFn, in[0])
}

// The constants of ATen's GeluKernelImpl and GeluBackwardKernelImpl, computed
// in double and rounded to float as there.
var (
	geluAlpha = float32(math.Sqrt2 / 2)                                  // M_SQRT1_2
	geluPDF   = float32(2 / math.Sqrt(math.Pi) * (math.Sqrt2 / 2) * 0.5) // M_2_SQRTPI·M_SQRT1_2·0.5 = 1/√(2π)
	geluBeta  = float32(math.Sqrt2 * (2 / math.Sqrt(math.Pi)) * 0.5)     // M_SQRT2·M_2_SQRTPI·0.5 = √(2/π)
	geluKappa = float32(0.044715)
)

// geluFn: y = x·0.5·(1 + erf(x·α)); dx = dy·(cdf + x·pdf) with
// cdf = 0.5·(1 + erf(x·α)) and pdf = β·exp(x·x·(-0.5)).
var geluFn = &pointwise{
	name: "gelu",
	forward: func(x, y []float32) {
		for i, v := range x {
			y[i] = v * 0.5 * (1 + erf32(v*geluAlpha))
		}
	},
	backward: func(x, _, dy, dx []float32) {
		for i, v := range x {
			cdf := 0.5 * (1 + erf32(v*geluAlpha))
			pdf := geluPDF * exp32(v*v*-0.5)
			dx[i] = dy[i] * (cdf + v*pdf)
		}
	},
}

// geluTanhFn: y = 0.5·x·(1 + tanh(inner)) with inner = β·(x + κ·x³), and its
// derivative as ATen spells it out (left and right factors).
var geluTanhFn = &pointwise{
	name: "gelu_tanh",
	forward: func(x, y []float32) {
		for i, v := range x {
			cube := v * v * v
			inner := geluBeta * (v + geluKappa*cube)
			y[i] = 0.5 * v * (1 + tanh32(inner))
		}
	},
	backward: func(x, _, dy, dx []float32) {
		for i, v := range x {
			sq := v * v
			cube := v * v * v
			t := tanh32(geluBeta * (v + geluKappa*cube))
			left := 0.5 * v
			leftD := 0.5 * (1 + t)
			rightD := left * (1 - t*t) * (geluBeta * (1 + 3*geluKappa*sq))
			dx[i] = dy[i] * (leftD + rightD)
		}
	},
}
