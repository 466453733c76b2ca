package nn

import (
	G "gorgonia.org/gorgonia"

	"github.com/shrink-ml/shrink/arch"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "tanh",
		Summary: "nn.Tanh: tanh(x)",
		New:     func() arch.Layer { return &Tanh{} },
	})
}

// Tanh is nn.Tanh.
type Tanh struct{ activation }

func (*Tanh) Build(b Builder, in []*G.Node) (*G.Node, error) {
	return buildPointwise(b, tanhFn, in[0])
}

// tanhFn's gradient is ATen's tanh_backward: dy·(1 - y²), from the output.
var tanhFn = &pointwise{
	name: "tanh",
	forward: func(x, y []float32) {
		for i, v := range x {
			y[i] = tanh32(v)
		}
	},
	backward: func(_, y, dy, dx []float32) {
		for i, t := range y {
			dx[i] = dy[i] * (1 - t*t)
		}
	},
}
