package nn

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/op"
)

// TestTallBackwardMatchesApart checks that the fused backward of a tapped
// convolution (one transpose of dy for both gradients) gives the bits of
// the two ops apart, which ResNet trainings' checkpoints depend on, at one
// and two threads, for the tapped cases of chunkedCases and batches that
// leave a short last chunk or fewer chunks than parts.
func TestTallBackwardMatchesApart(t *testing.T) {
	for _, tc := range chunkedCases {
		d := tc.p.geometry(tensor.Shape{1, tc.C, tc.H, tc.W}, tensor.Shape{tc.O, tc.C / tc.p.groups, tc.KH, tc.KW})
		if !d.tapped() {
			continue
		}
		for _, batch := range []int{1, 3, max(tc.B, 5), 37} {
			tc := tc
			tc.B = batch
			t.Run(tc.String()+"_b"+strconv.Itoa(batch), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(11, uint64(batch*tc.C+tc.W)))
				x := randDense(rng, tc.B, tc.C, tc.H, tc.W)
				w := randDense(rng, tc.O, tc.C, tc.KH, tc.KW)
				dy := randDense(rng, tc.B, tc.O, tc.H, tc.W)
				for _, threads := range []int{1, 2} {
					gemm.SetThreads(threads)
					apartX, err := (&convBackXOp{Base: op.NewBase("dx"), convParams: tc.p}).Do(dy, x, w)
					if err != nil {
						t.Fatal(err)
					}
					apartW, err := (&convBackWOp{Base: op.NewBase("dw"), convParams: tc.p}).Do(dy, x, w)
					if err != nil {
						t.Fatal(err)
					}
					fused := &convBackXOp{Base: op.NewBase("dx"), convParams: tc.p, back: &tallBackward{}}
					// Twice: the second run reuses layouts whose separators
					// must still be zeros.
					for run := 0; run < 2; run++ {
						dx, err := fused.Do(dy, x, w)
						if err != nil {
							t.Fatal(err)
						}
						dw, err := (&convBackDWOp{Base: op.NewBase("dw"), back: fused.back}).Do(dy, x, w, dx)
						if err != nil {
							t.Fatal(err)
						}
						sameBits(t, "dx", op.F32(dx), op.F32(apartX))
						sameBits(t, "dw", op.F32(dw), op.F32(apartW))
					}
				}
				gemm.SetThreads(1)
			})
		}
	}
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v, want %v bit for bit", what, i, got[i], want[i])
		}
	}
}
