package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shrink-ml/shrink/internal/vec/bnoracle"
)

// TestBatchNormSumOrder: a training batch norm's statistics (the float64
// mean and 1/sqrt(var + eps) it keeps for the backward, and the running
// statistics) are, bit for bit, what the old scalar loops gave, padding
// rows included, so ResNet trainings reproduce the checkpoints recorded
// with them. (internal/vec's TestBNSumOrder checks the gradient sums' float64
// values the same way.)
func TestBatchNormSumOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range [][4]int{{2, 3, 1, 2}, {5, 2, 3, 4}, {9, 4, 49, 9}, {16, 16, 5, 13}, {128, 3, 196, 128}} {
		B, C, S, rows := s[0], s[1], s[2], s[3]
		t.Run(fmt.Sprintf("B%d_C%d_S%d_rows%d", B, C, S, rows), func(t *testing.T) {
			x := make([]float32, B*C*S)
			for i := range x {
				x[i] = float32(1.5 + 2*r.NormFloat64())
			}
			st := &bnState{eps: 1e-5, momentum: 0.1, rows: &rows, training: true,
				mean: make([]float32, C), variance: make([]float32, C),
				batchMean: make([]float64, C), invStd: make([]float64, C)}
			for c := range C {
				st.variance[c] = 1
			}
			o := &bnOp{st: st, dims: 3, x: x, y: make([]float32, len(x)), shape: [3]int{B, C, S}}
			for c := range C {
				o.Run(c, 0)
			}
			for c := range C {
				var sum float64
				for b := 0; b < rows; b++ {
					sum += bnoracle.Sum64(x[(b*C+c)*S : (b*C+c+1)*S])
				}
				n := rows * S
				mean := sum / float64(n)
				var sq float64
				for b := 0; b < rows; b++ {
					sq += bnoracle.SqDev64(x[(b*C+c)*S:(b*C+c+1)*S], mean)
				}
				variance := sq / float64(n)
				inv := 1 / math.Sqrt(variance+st.eps)
				if math.Float64bits(st.batchMean[c]) != math.Float64bits(mean) || math.Float64bits(st.invStd[c]) != math.Float64bits(inv) {
					t.Errorf("channel %d: mean %.17g, invstd %.17g; the old loops give %.17g, %.17g", c, st.batchMean[c], st.invStd[c], mean, inv)
				}
				rm, rv := float32(0.1*mean), float32(0.1*variance*float64(n)/float64(n-1)+0.9)
				if st.mean[c] != rm || st.variance[c] != rv {
					t.Errorf("channel %d: running mean %g, var %g; want %g, %g", c, st.mean[c], st.variance[c], rm, rv)
				}
			}
		})
	}
}
