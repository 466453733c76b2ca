//go:build amd64 && !purego

package planar

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
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

// BenchmarkForward times Forward on benchShapes, image by image in place
// and on copies of chunks of images (directMin's choice), in useful
// GFLOP/s (2 per multiply-add of the convolution).
func BenchmarkForward(b *testing.B) {
	defer func(m int) { directMin = m }(directMin)
	for _, bs := range benchShapes {
		for _, mode := range []string{"direct", "copy"} {
			b.Run(fmt.Sprintf("C%d_O%d_%dx%d/%s", bs.s.C, bs.s.O, bs.s.H, bs.s.W, mode), func(b *testing.B) {
				directMin = 1 << 30
				if mode == "direct" {
					directMin = 0
				}
				rng := rand.New(rand.NewPCG(1, 2))
				s := bs.s
				x := randoms(rng, bs.nb*s.C*s.H*s.W)
				w := randoms(rng, s.O*s.C*s.KH*s.KW)
				y := make([]float32, bs.nb*s.O*s.OH()*s.OW())
				c := New(s, w, TapsFirst)
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

// TestKernelsLeaveArgs checks that no kernel writes to its kernelArgs, a
// Go heap object: a pointer advanced past the end of its array and stored
// back there (the stores' masks did so once) is a pointer to another
// object for the garbage collector, which crashed ResNet-20 runs with
// "found pointer to free object" now and then.
func TestKernelsLeaveArgs(t *testing.T) {
	if asmImpl() == nil {
		t.Skip("no AVX-512")
	}
	calls := 0
	checking := &impl{name: "check", v: asmV, rmax: len(kernels[asmV]), run: func(r, v int, c *call) {
		runKernel(func(p *byte) {
			a := (*kernelArgs)(unsafe.Pointer(p))
			before := *a
			kernels[v][r-1](p)
			if *a != before {
				t.Errorf("kernel r=%d v=%d changed its arguments: %+v, then %+v", r, v, before, *a)
			}
			calls++
		}, v, r, c)
	}}
	prev := active.Swap(checking)
	defer active.Store(prev)
	rng := rand.New(rand.NewPCG(3, 3))
	for _, bs := range append(benchShapes, struct {
		s  Shape
		nb int
	}{Shape{C: 5, H: 13, W: 13, O: 9, KH: 3, KW: 3, Stride: 2}, 3}) {
		s := bs.s
		for _, order := range []Order{TapsFirst, ChannelsFirst} {
			c := New(s, randoms(rng, s.O*s.C*s.KH*s.KW), order)
			var sc Scratch
			c.Forward(randoms(rng, bs.nb*s.C*s.H*s.W), bs.nb, make([]float32, bs.nb*s.O*s.OH()*s.OW()), &sc)
		}
	}
	if calls == 0 {
		t.Fatal("no kernel ran")
	}
}
