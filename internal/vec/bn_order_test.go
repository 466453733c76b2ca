// At GOAMD64=v3 the compiler fuses the oracle's multiply-adds below, so it
// is no longer the order the checkpoints were recorded in (builds pin v1:
// see Taskfile.yml).

//go:build !amd64.v3

package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shrink-ml/shrink/internal/vec/bnoracle"
)

// TestBNSumOrder: the Go references and the assembly give, bit for bit,
// what the old bnOp.Run and bnGradOp.Run loops computed from bnoracle's Sum64,
// SqDev64 and DotDev64 (run after run, in order), and the ReLU-fused gradient sums
// what DotDev64 gave on ReLUGrad's output, so trainings reproduce the
// checkpoints recorded before.
func TestBNSumOrder(t *testing.T) {
	t.Logf("AVX-512 kernels: %v", useBN512)
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 49, 196, 784} {
		for runs := 1; runs <= 9; runs++ {
			for _, gap := range []int{0, 1, 3} {
				stride := n + gap
				if runs > 5 && n > 49 && gap != 3 {
					continue
				}
				t.Run(fmt.Sprintf("%dx%d/%d", runs, n, stride), func(t *testing.T) {
					bnOrderCase(t, r, runs, n, stride)
				})
			}
		}
	}
}

func bnOrderCase(t *testing.T, r *rand.Rand, runs, n, stride int) {
	t.Helper()
	x, dy, y := bnData(r, runs, n, stride), bnData(r, runs, n, stride), bnData(r, runs, n, stride)
	// y: a ReLU's output, zero about half the time.
	for i, v := range y {
		if !math.IsNaN(float64(v)) {
			y[i] = max(v-3, 0)
		}
	}
	var sum float64
	for b := range runs {
		sum += bnoracle.Sum64(x[b*stride : b*stride+n])
	}
	mean := sum / float64(runs*n)
	var sq float64
	for b := range runs {
		sq += bnoracle.SqDev64(x[b*stride:b*stride+n], mean)
	}
	var sdy, sdyx, rdy, rdyx float64
	g := make([]float32, n)
	for b := range runs {
		at := b * stride
		s, d := bnoracle.DotDev64(dy[at:at+n], x[at:at+n], mean)
		sdy += s
		sdyx += d
		// the old reluGradOp.Run's loop
		for i, v := range y[at : at+n] {
			keep := -min(math.Float32bits(v), 1)
			g[i] = math.Float32frombits(math.Float32bits(dy[at+i]) & keep)
		}
		s, d = bnoracle.DotDev64(g, x[at:at+n], mean)
		rdy += s
		rdyx += d
	}
	check := func(what string, got, want float64) {
		t.Helper()
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("%s = %.17g, the old order gives %.17g", what, got, want)
		}
	}
	check("bnSumRef", bnSumRef(x, runs, n, stride), sum)
	check("BNSum", BNSum(x, runs, n, stride), sum)
	check("bnSqDevRef", bnSqDevRef(x, runs, n, stride, mean), sq)
	check("BNSqDev", BNSqDev(x, runs, n, stride, mean), sq)
	s, d := bnDotDevRef(dy, x, runs, n, stride, mean)
	check("bnDotDevRef sum", s, sdy)
	check("bnDotDevRef dot", d, sdyx)
	s, d = BNDotDev(dy, x, runs, n, stride, mean)
	check("BNDotDev sum", s, sdy)
	check("BNDotDev dot", d, sdyx)
	s, d = bnDotDevReLURef(dy, y, x, runs, n, stride, mean)
	check("bnDotDevReLURef sum", s, rdy)
	check("bnDotDevReLURef dot", d, rdyx)
	s, d = BNDotDevReLU(dy, y, x, runs, n, stride, mean)
	check("BNDotDevReLU sum", s, rdy)
	check("BNDotDevReLU dot", d, rdyx)
}

// BenchmarkBNSums times the statistics and gradient sums over every
// channel of ResNet-20's batch norm inputs (B=128: C=16 channels of 784
// floats, 32 of 196, 64 of 49; 6.4 MB a tensor, as a training step walks
// them).
func BenchmarkBNSums(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range [][2]int{{784, 16}, {196, 32}, {49, 64}} {
		n, c := s[0], s[1]
		runs, stride := 128, n*c
		x, dy, y := bnData(r, runs*c, n, n), bnData(r, runs*c, n, n), bnData(r, runs*c, n, n)
		b.Run(fmt.Sprintf("S=%d/stats", n), func(b *testing.B) {
			b.SetBytes(int64(4 * len(x) * 2))
			for b.Loop() {
				for ch := range c {
					m := BNSum(x[ch*n:], runs, n, stride) / float64(runs*n)
					BNSqDev(x[ch*n:], runs, n, stride, m)
				}
			}
		})
		b.Run(fmt.Sprintf("S=%d/grad", n), func(b *testing.B) {
			b.SetBytes(int64(4 * len(x) * 2))
			for b.Loop() {
				for ch := range c {
					BNDotDev(dy[ch*n:], x[ch*n:], runs, n, stride, 2.9)
				}
			}
		})
		b.Run(fmt.Sprintf("S=%d/gradReLU", n), func(b *testing.B) {
			b.SetBytes(int64(4 * len(x) * 3))
			for b.Loop() {
				for ch := range c {
					BNDotDevReLU(dy[ch*n:], y[ch*n:], x[ch*n:], runs, n, stride, 2.9)
				}
			}
		})
	}
}
