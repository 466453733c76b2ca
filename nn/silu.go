package nn

import (
	G "gorgonia.org/gorgonia"

	"github.com/shrink-ml/shrink/arch"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "silu",
		Summary: "nn.SiLU (swish): x·sigmoid(x)",
		New:     func() arch.Layer { return &SiLU{} },
	})
}

// SiLU is nn.SiLU.
type SiLU struct{ activation }

func (*SiLU) Build(b Builder, in []*G.Node) (*G.Node, error) {
	return buildPointwise(b, siluFn, in[0])
}

// siluFn is ATen's silu_kernel, y = x / (1 + exp(-x)), and
// silu_backward_kernel, dx = dy·s·(1 + x·(1 - s)) with s = 1 / (1 + exp(-x)).
var siluFn = &pointwise{
	name: "silu",
	forward: func(x, y []float32) {
		for i, v := range x {
			y[i] = v / (1 + exp32(-v))
		}
	},
	backward: func(x, _, dy, dx []float32) {
		for i, v := range x {
			s := 1 / (1 + exp32(-v))
			dx[i] = dy[i] * s * (1 + v*(1-s))
		}
	},
}
