package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shrink-ml/shrink/quant"
)

// TestInt8QuantizeMatchesQuant checks the integer path's activation codes
// against quant's quantizer (the rule the fake-quantized training path and
// the checkpoint use) for every activation width the integer kernels take:
// 8 bits go through qgemm, fewer bits clamp below qgemm's ranges and take
// the loop beside it. (Only reduce_range inputs run on integers: without it
// quant's activation grid is signed.) The block is strided, ties and out-of-range values
// included, so a wrong clamp, stride or rounding shows.
func TestInt8QuantizeMatchesQuant(t *testing.T) {
	for _, tc := range []struct {
		bits   int
		reduce bool
	}{{8, true}, {7, true}, {6, true}, {4, true}, {2, true}} {
		t.Run(fmt.Sprintf("bits=%d/reduce=%v", tc.bits, tc.reduce), func(t *testing.T) {
			spec := quant.Spec{Bits: tc.bits, Scheme: quant.Asymmetric, Granularity: quant.PerTensor, ReduceRange: tc.reduce}
			_, qmax := spec.Range()
			rng := rand.New(rand.NewPCG(7, uint64(tc.bits)))
			const m, k, ldx, ldq = 5, 37, 41, 40
			x := make([]float32, m*ldx)
			for i := range x {
				x[i] = float32(rng.NormFloat64() * 3)
			}
			p := chooseAct(spec, m, k, x, ldx)
			// Exact ties of x·(1/scale) and values far outside the range.
			x[3] = float32(2.5) * p.Scale
			x[ldx+4] = float32(-0.5) * p.Scale
			x[2*ldx] = 1e30
			x[3*ldx+1] = float32(math.Inf(-1))
			q := make([]uint8, m*ldq)
			int8Quantize(m, k, x, ldx, p, qmax, q, ldq)
			want := make([]int32, k)
			params := quant.Params{Scale: []float32{p.Scale}, ZeroPoint: []int32{p.ZeroPoint}}
			for i := 0; i < m; i++ {
				spec.Quantize(x[i*ldx:i*ldx+k], params, want)
				for j, w := range want {
					if got := int32(q[i*ldq+j]); got != w {
						t.Fatalf("row %d col %d: x %g (scale %g, zero point %d): code %d, quant gives %d", i, j, x[i*ldx+j], p.Scale, p.ZeroPoint, got, w)
					}
				}
			}
		})
	}
}
