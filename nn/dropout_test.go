package nn_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/model"
)

// dropoutNet is a training net whose logits are dropout(x) itself: an
// identity linear layer (fc) then dropout, on one sample of width features,
// so its bias gradient is the dropout's input gradient, value by value.
func dropoutNet(t *testing.T, p float64, width int, mode model.Mode, src *rand.PCG) *model.Net {
	t.Helper()
	spec := arch.Spec{Input: arch.Shape{width}, Classes: width, Layers: []arch.LayerSpec{
		arch.NewLayer("fc", "linear", map[string]any{"out": width}),
		arch.NewLayer("", "dropout", map[string]any{"p": p}),
	}}
	m, err := model.New(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	fc := m.Layer("fc")
	clear(fc.Weights[0].Data)
	for i := range width {
		fc.Weights[0].Data[i*width+i] = 1
	}
	clear(fc.Bias().Data)
	opt := model.NetOptions{Batch: 1, Mode: mode}
	if src != nil {
		opt.Rand = rand.New(src)
	}
	net, err := model.Build(m, opt)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range net.X {
		// Never 0, so a zero output means dropped.
		net.X[i] = float32(0.5 + rng.Float64())
		if i%2 == 1 {
			net.X[i] = -net.X[i]
		}
	}
	if net.Labels != nil {
		net.Labels[0] = 3
	}
	return net
}

// step runs the net once and returns the noise each value was multiplied by
// (0 or the scale), read off the logits.
func step(t *testing.T, net *model.Net) []float32 {
	t.Helper()
	if err := net.Run(); err != nil {
		t.Fatal(err)
	}
	noise := make([]float32, len(net.X))
	for i, y := range net.Logits() {
		noise[i] = y / net.X[i]
	}
	return noise
}

func TestDropoutTraining(t *testing.T) {
	const width, steps = 500, 200
	// The scales are what PyTorch 1.13's F.dropout(torch.ones(4096), p)
	// kept values are: its noise.div_(1 - p) rounds 1-p to float32 first,
	// which for the last two differs from rounding 1/(1-p).
	for _, tc := range []struct {
		p     float64
		scale float32
	}{{0.1, 1.1111112}, {0.5, 2}, {0.8, 5}, {0.2804087579860399, 1.3896778}, {0.7535131086748066, 4.057011}} {
		p, scale := tc.p, tc.scale
		t.Run(fmt.Sprintf("p %g", p), func(t *testing.T) {
			net := dropoutNet(t, p, width, model.ModeTrain, rand.NewPCG(42, 0))
			grad := make([]float32, width)
			zeros := 0
			for range steps {
				if err := net.Run(); err != nil {
					t.Fatal(err)
				}
				logits := net.Logits()
				model.Loss{}.Compute(logits, nil, net.Labels, width, grad)
				db := net.Params()[1].Grad() // fc.bias: the dropout's input gradient
				for i, y := range logits {
					kept := y != 0
					if !kept {
						zeros++
					} else if want := net.X[i] * scale; y != want {
						t.Fatalf("a kept value is %g, want x·1/(1-p) = %g", y, want)
					}
					// The gradient is masked and scaled exactly as the forward:
					// dy·0 where dropped, dy·scale where kept.
					want := float32(0)
					if kept {
						want = grad[i] * scale
					}
					if db[i] != want {
						t.Fatalf("input gradient %d is %g, want %g (kept %v)", i, db[i], want, kept)
					}
				}
			}
			n := float64(width * steps)
			share := float64(zeros) / n
			sigma := math.Sqrt(p * (1 - p) / n)
			if math.Abs(share-p) > 5*sigma {
				t.Errorf("%.4f of the values dropped, want %g ± %.4f (5σ)", share, p, 5*sigma)
			}
		})
	}
}

func TestDropoutRepeatsFromTheSeed(t *testing.T) {
	const width = 300
	masks := func(src *rand.PCG, steps int) [][]float32 {
		net := dropoutNet(t, 0.5, width, model.ModeTrain, src)
		var out [][]float32
		for range steps {
			out = append(out, step(t, net))
		}
		return out
	}
	a, b := masks(rand.NewPCG(9, 3), 4), masks(rand.NewPCG(9, 3), 4)
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			t.Fatalf("step %d: two runs from one seed drew different masks", i)
		}
	}
	if slices.Equal(a[0], a[1]) {
		t.Error("two steps drew the same mask")
	}
	if other := masks(rand.NewPCG(10, 3), 1); slices.Equal(a[0], other[0]) {
		t.Error("another seed drew the same mask")
	}

	// Resuming restores the stream's state (stages save it with the
	// training state): the masks go on as in the uninterrupted run.
	src := rand.NewPCG(9, 3)
	net := dropoutNet(t, 0.5, width, model.ModeTrain, src)
	step(t, net)
	step(t, net)
	state, err := src.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	resumed := new(rand.PCG)
	if err := resumed.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	rest := masks(resumed, 2)
	for i := range rest {
		if !slices.Equal(rest[i], a[2+i]) {
			t.Errorf("resumed step %d drew another mask than the uninterrupted run", 2+i)
		}
	}

	// One Float64 per value, dropped below p: the documented draw.
	rng := rand.New(rand.NewPCG(9, 3))
	for i := range width {
		if dropped := rng.Float64() < 0.5; dropped != (a[0][i] == 0) {
			t.Fatalf("value %d: dropped %v, but its draw says %v", i, a[0][i] == 0, dropped)
		}
	}
}

func TestDropoutEdgeCases(t *testing.T) {
	const width = 50
	for _, tc := range []struct {
		name string
		p    float64
		mode model.Mode
		want func(x float32) float32
	}{
		{"eval p 0.5", 0.5, model.ModeEval, func(x float32) float32 { return x }},
		{"eval p 1", 1, model.ModeEval, func(x float32) float32 { return x }},
		{"train p 0", 0, model.ModeTrain, func(x float32) float32 { return x }},
		{"train p 1", 1, model.ModeTrain, func(float32) float32 { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := rand.NewPCG(4, 4)
			before, _ := src.MarshalBinary()
			net := dropoutNet(t, tc.p, width, tc.mode, src)
			for range 3 {
				if err := net.Run(); err != nil {
					t.Fatal(err)
				}
				for i, y := range net.Logits() {
					if want := tc.want(net.X[i]); y != want {
						t.Fatalf("value %d is %g, want %g", i, y, want)
					}
				}
				if tc.mode == model.ModeTrain && tc.p == 1 {
					for i, g := range net.Params()[1].Grad() {
						if g != 0 {
							t.Fatalf("p 1: input gradient %d is %g, want 0", i, g)
						}
					}
				}
			}
			if after, _ := src.MarshalBinary(); !slices.Equal(before, after) {
				t.Error("drew random numbers it does not need")
			}
		})
	}

	// Training with 0 < p < 1 and no stream is a programming error, named.
	spec := arch.Spec{Input: arch.Shape{4}, Classes: 4, Layers: []arch.LayerSpec{
		arch.NewLayer("fc", "linear", map[string]any{"out": 4}),
		arch.NewLayer("", "dropout", nil),
	}}
	m := model.MustNew(spec, rand.New(rand.NewPCG(1, 1)))
	if _, err := model.Build(m, model.NetOptions{Batch: 2, Mode: model.ModeTrain}); err == nil || !strings.Contains(err.Error(), "random stream") {
		t.Errorf("training dropout without a random stream: error %v, want one about the stream", err)
	}
}
