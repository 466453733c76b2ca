package nn

import (
	G "gorgonia.org/gorgonia"

	"github.com/shrink-ml/shrink/arch"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "sigmoid",
		Summary: "nn.Sigmoid: 1 / (1 + exp(-x))",
		New:     func() arch.Layer { return &Sigmoid{} },
	})
}

// Sigmoid is nn.Sigmoid.
type Sigmoid struct{ activation }

func (*Sigmoid) Build(b Builder, in []*G.Node) (*G.Node, error) {
	return buildPointwise(b, sigmoidFn, in[0])
}

// sigmoidFn is ATen's: y = 1 / (1 + exp(-x)); dx = dy·(1 - y)·y, from the
// output.
var sigmoidFn = &pointwise{
	name: "sigmoid",
	forward: func(x, y []float32) {
		for i, v := range x {
			y[i] = 1 / (1 + exp32(-v))
		}
	},
	backward: func(_, y, dy, dx []float32) {
		for i, s := range y {
			dx[i] = dy[i] * (1 - s) * s
		}
	},
}
