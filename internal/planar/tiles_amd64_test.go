//go:build amd64 && !purego

package planar

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchShapes are ResNet-20's stride-1 convolutions, dense (16/32/64
// channels) and as recipes/resnet-fashion-compress.yaml's prune stage left
// them (10-12, 19-27, 37-49), with the images per call nn gives them.
var benchShapes = []struct {
	s  Shape
	nb int
}{
	{Shape{C: 16, H: 28, W: 28, O: 16, KH: 3, KW: 3}, 2},
	{Shape{C: 11, H: 28, W: 28, O: 12, KH: 3, KW: 3}, 2},
	{Shape{C: 32, H: 14, W: 14, O: 32, KH: 3, KW: 3}, 5},
	{Shape{C: 25, H: 14, W: 14, O: 23, KH: 3, KW: 3}, 6},
	{Shape{C: 64, H: 7, W: 7, O: 64, KH: 3, KW: 3}, 10},
	{Shape{C: 42, H: 7, W: 7, O: 45, KH: 3, KW: 3}, 14},
	{Shape{C: 49, H: 7, W: 7, O: 42, KH: 3, KW: 3}, 13},
}

// BenchmarkTiles times Forward on benchShapes with each vector count's
// widest tiles (the rest of the channels in one narrower tile), in useful
// GFLOP/s (2 per multiply-add of the convolution).
func BenchmarkTiles(b *testing.B) {
	for _, bs := range benchShapes {
		for v, ks := range kernels {
			im := &impl{name: fmt.Sprintf("v%d", v), v: v, rmax: len(ks), run: func(r int, c *call) { runKernel(ks[r-1], v, r, c) }}
			for _, rmax := range []int{len(ks)} {
				b.Run(fmt.Sprintf("C%d_O%d_%dx%d/V%d_R%d", bs.s.C, bs.s.O, bs.s.H, bs.s.W, v, rmax), func(b *testing.B) {
					rng := rand.New(rand.NewPCG(1, 2))
					s := bs.s
					x := randoms(rng, bs.nb*s.C*s.H*s.W)
					w := randoms(rng, s.O*s.C*s.KH*s.KW)
					y := make([]float32, bs.nb*s.O*s.H*s.W)
					prev := active.Swap(&impl{name: im.name, v: v, rmax: rmax, run: im.run})
					c := New(s, w)
					active.Store(prev)
					var sc Scratch
					c.Forward(x, bs.nb, y, &sc)
					b.ResetTimer()
					for range b.N {
						c.Forward(x, bs.nb, y, &sc)
					}
					macs := float64(bs.nb * s.O * s.C * s.KH * s.KW * s.H * s.W)
					b.ReportMetric(2*macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
