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

// TestPatchedMatchesTall checks that narrow images multiplied as patch rows
// give the bits of the tall layout: the forward, and both gradients.
func TestPatchedMatchesTall(t *testing.T) {
	defer func() { patchNarrow = true }()
	p := convParams{Square(1), Square(1), Square(1), 1}
	for _, tc := range []convCase{
		{37, 64, 7, 7, 64, 3, 3, p},  // ResNet-20's layer3, a short last chunk
		{128, 64, 7, 7, 64, 3, 3, p}, // its batch
		{5, 12, 5, 6, 9, 3, 3, p},    // Cin != Cout, not a multiple of the vector width
		{3, 3, 1, 1, 2, 3, 3, p},     // one pixel: every tap but the middle on the padding
		{9, 6, 4, 7, 10, 5, 3, convParams{Square(1), Pair{2, 1}, Square(1), 1}}, // 5x3 taps
	} {
		t.Run(tc.String()+"_b"+strconv.Itoa(tc.B), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(13, uint64(tc.B*tc.C+tc.W)))
			x := randDense(rng, tc.B, tc.C, tc.H, tc.W)
			w := randDense(rng, tc.O, tc.C, tc.KH, tc.KW)
			dy := randDense(rng, tc.B, tc.O, tc.H, tc.W)
			var runs [2][3][]float32
			for i, patched := range []bool{false, true} {
				patchNarrow = patched
				fwd := &conv2dOp{Base: op.NewBase("conv"), convParams: tc.p}
				bx := &convBackXOp{Base: op.NewBase("dx"), convParams: tc.p, back: &tallBackward{}}
				d := tc.p.geometry(op.Dims(x), op.Dims(w))
				if g := tallOf(d); !d.tapped() || g.patched() != patched {
					t.Fatalf("tapped %v, patched %v", d.tapped(), g.patched())
				}
				y, err := fwd.Do(x, w)
				if err != nil {
					t.Fatal(err)
				}
				dx, err := bx.Do(dy, x, w)
				if err != nil {
					t.Fatal(err)
				}
				dw, err := (&convBackDWOp{Base: op.NewBase("dw"), back: bx.back}).Do(dy, x, w, dx)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range []any{y, dx, dw} {
					runs[i][k] = append([]float32(nil), op.F32(v.(*tensor.Dense))...)
				}
			}
			for k, what := range []string{"y", "dx", "dw"} {
				sameBits(t, what, runs[1][k], runs[0][k])
			}
		})
	}
}
