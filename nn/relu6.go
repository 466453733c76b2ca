package nn

import (
	G "gorgonia.org/gorgonia"

	"github.com/shrink-ml/shrink/arch"
)

func init() {
	arch.RegisterLayer(arch.LayerType{
		Name:    "relu6",
		Summary: "nn.ReLU6: min(max(x, 0), 6)",
		New:     func() arch.Layer { return &ReLU6{} },
	})
}

// ReLU6 is nn.ReLU6, which PyTorch computes as hardtanh(x, 0, 6).
type ReLU6 struct{ activation }

func (*ReLU6) Build(b Builder, in []*G.Node) (*G.Node, error) {
	return buildPointwise(b, relu6Fn, in[0])
}

// relu6Fn: the gradient passes where 0 < x < 6, strictly, as ATen's
// hardtanh_backward has it (none at exactly 0 or 6).
var relu6Fn = &pointwise{
	name: "relu6",
	forward: func(x, y []float32) {
		for i, v := range x {
			y[i] = min(max(v, 0), 6)
		}
	},
	backward: func(x, _, dy, dx []float32) {
		for i, v := range x {
			if v > 0 && v < 6 {
				dx[i] = dy[i]
			} else {
				dx[i] = 0
			}
		}
	},
}
