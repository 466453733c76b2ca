package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// bnShapes are channel walks (runs, n, stride) around the vector widths: one
// value, tails of every kind, strides leaving gaps between runs, and
// ResNet-20's (B=128 runs of 784, 196 and 49 values, C=16, 32, 64).
var bnShapes = [][3]int{
	{1, 1, 1}, {1, 7, 7}, {1, 8, 8}, {1, 15, 15}, {1, 16, 16}, {1, 17, 17}, {1, 31, 31},
	{1, 32, 32}, {1, 33, 33}, {3, 1, 5}, {2, 9, 40}, {5, 49, 49 * 3}, {4, 63, 64},
	{7, 100, 301}, {128, 49, 49 * 64}, {16, 196, 196 * 32}, {8, 784, 784 * 16},
}

// bnData fills a walk's runs with values (offset from zero, so the mean
// matters) and the gaps between them with NaN, which no kernel may read.
func bnData(r *rand.Rand, runs, n, stride int) []float32 {
	x := make([]float32, (runs-1)*stride+n+40)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	for b := range runs {
		for i := range n {
			x[b*stride+i] = float32(3 + 2*r.NormFloat64())
		}
	}
	return x
}

// TestBNKernels: the assembly gives the Go references' bits, and the
// references are the plain sums and element-wise formulas they claim to be
// (float64 sums to a relative 1e-12; element-wise results exactly).
func TestBNKernels(t *testing.T) {
	t.Logf("AVX-512 kernels: %v", useBN512)
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range bnShapes {
		runs, n, stride := s[0], s[1], s[2]
		t.Run(fmt.Sprintf("%dx%d/%d", runs, n, stride), func(t *testing.T) {
			x, dy := bnData(r, runs, n, stride), bnData(r, runs, n, stride)
			var sum, sq, sdy, sdyx float64
			mean := 2.75
			for b := range runs {
				for i := range n {
					v, g := float64(x[b*stride+i]), float64(dy[b*stride+i])
					sum += v
					sq += (v - mean) * (v - mean)
					sdy += g
					sdyx += g * (v - mean)
				}
			}
			near(t, "BNSum", BNSum(x, runs, n, stride), sum)
			near(t, "BNSqDev", BNSqDev(x, runs, n, stride, mean), sq)
			gs, gd := BNDotDev(dy, x, runs, n, stride, mean)
			near(t, "BNDotDev sum", gs, sdy)
			near(t, "BNDotDev dot", gd, sdyx)
			same64(t, "BNSum", BNSum(x, runs, n, stride), bnSumRef(x, runs, n, stride))
			same64(t, "BNSqDev", BNSqDev(x, runs, n, stride, mean), bnSqDevRef(x, runs, n, stride, mean))
			rs, rd := bnDotDevRef(dy, x, runs, n, stride, mean)
			same64(t, "BNDotDev sum", gs, rs)
			same64(t, "BNDotDev dot", gd, rd)

			a, b := float32(0.37), float32(-1.25)
			y, ref := bnData(r, runs, n, stride), bnData(r, runs, n, stride)
			copy(ref, y) // the gaps must survive too
			ScaleShift(y, x, runs, n, stride, a, b)
			for bi := range runs {
				for i := range n {
					at := bi*stride + i
					ref[at] = float32(x[at]*a) + b
				}
			}
			same32(t, "ScaleShift", y, ref)

			gm, mf, k, sf := float32(0.1), float32(2.9), float32(0.03), float32(1.7)
			copy(y, ref)
			BNGradIn(y, dy, x, runs, n, stride, gm, mf, k, sf)
			for bi := range runs {
				for i := range n {
					at := bi*stride + i
					ref[at] = float32((dy[at]-gm)-float32((x[at]-mf)*k)) * sf
				}
			}
			same32(t, "BNGradIn", y, ref)

			// Fused with a ReLU: the same bits as ScaleShift, ReLU and
			// ReLUGrad run one after the other.
			fy, uy := bnData(r, runs, n, stride), bnData(r, runs, n, stride)
			copy(uy, fy)
			ScaleShiftReLU(fy, x, runs, n, stride, a, b)
			ScaleShift(uy, x, runs, n, stride, a, b)
			g := bnData(r, runs, n, stride)
			for bi := range runs {
				at := bi * stride
				ReLU(uy[at:at+n], uy[at:at+n])
				ReLUGrad(g[at:at+n], uy[at:at+n], dy[at:at+n])
			}
			same32(t, "ScaleShiftReLU", fy, uy)
			rfy := bnData(r, runs, n, stride)
			copy(rfy, fy)
			scaleShiftReLURef(rfy, x, runs, n, stride, a, b)
			same32(t, "ScaleShiftReLU against its reference", fy, rfy)
			fs, fd := BNDotDevReLU(dy, fy, x, runs, n, stride, mean)
			us, ud := BNDotDev(g, x, runs, n, stride, mean)
			same64(t, "BNDotDevReLU sum", fs, us)
			same64(t, "BNDotDevReLU dot", fd, ud)
			rs, rd = bnDotDevReLURef(dy, fy, x, runs, n, stride, mean)
			same64(t, "BNDotDevReLU sum against its reference", fs, rs)
			same64(t, "BNDotDevReLU dot against its reference", fd, rd)
			fdx, udx := bnData(r, runs, n, stride), bnData(r, runs, n, stride)
			copy(udx, fdx)
			BNGradInReLU(fdx, dy, fy, x, runs, n, stride, gm, mf, k, sf)
			BNGradIn(udx, g, x, runs, n, stride, gm, mf, k, sf)
			same32(t, "BNGradInReLU", fdx, udx)
			copy(udx, fdx)
			bnGradInReLURef(udx, dy, fy, x, runs, n, stride, gm, mf, k, sf)
			same32(t, "BNGradInReLU against its reference", fdx, udx)
		})
	}
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.17g, want %.17g", what, got, want)
	}
}

func same64(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Float64bits(got) != math.Float64bits(want) {
		t.Errorf("%s: assembly %.17g, Go reference %.17g", what, got, want)
	}
}

func same32(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d is %g, want %g", what, i, got[i], want[i])
		}
	}
}
