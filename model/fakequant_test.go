package model

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/quant"
)

// insideRef is PyTorch FakeQuantize's gradient mask, written out from its
// definition: 1 where round_half_even(x * float32(1/scale)) + zero_point lies in
// [qmin, qmax], else 0.
func insideRef(spec quant.Spec, x []float32, p quant.Params) []float32 {
	qmin, qmax := spec.Range()
	n := len(x) / len(p.Scale)
	out := make([]float32, len(x))
	for i, v := range x {
		c := i / n
		inv := 1 / p.Scale[c]
		q := int64(math.RoundToEven(float64(v*inv))) + int64(p.ZeroPoint[c])
		if q >= int64(qmin) && q <= int64(qmax) {
			out[i] = 1
		}
	}
	return out
}

// The fake-quantize op's gradient is the clipped straight-through estimator:
// d loss / d x = d loss / d y where x fell inside the grid's range, 0 outside.
// loss = sum(y * c), so d loss / d y = c.
func TestFakeQuantGradientIsClippedSTE(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	shape := []int{4, 6}
	for _, tc := range []struct {
		name     string
		spec     quant.Spec
		observer Observer
		params   quant.Params // Fixed only
		clips    bool         // some values fall outside the range
	}{
		{"fixed asymmetric 4-bit, half the values clipped", quant.Spec{Bits: 4, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}, Fixed,
			quant.Params{Scale: []float32{0.1}, ZeroPoint: []int32{-3}}, true},
		{"fixed symmetric 8-bit", quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerTensor}, Fixed,
			quant.Params{Scale: []float32{0.01}, ZeroPoint: []int32{0}}, true},
		// Observed per step: symmetric max|w| lands on 127.5 -> 128, just outside,
		// so PyTorch gives the row's extreme a zero gradient too.
		{"observed symmetric per channel", quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}, ObserveEach, quant.Params{}, true},
		// Asymmetric, the observed range fits the grid exactly: nothing clips.
		{"observed asymmetric per tensor 3-bit", quant.Spec{Bits: 3, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}, ObserveEach, quant.Params{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := make([]float32, 24)
			c := make([]float32, 24)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
				c[i] = float32(rng.NormFloat64())
			}
			g := G.NewGraph()
			xn := G.NewTensor(g, tensor.Float32, 2, G.WithShape(shape...), G.WithName("x"),
				G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(x))))
			cn := G.NewTensor(g, tensor.Float32, 2, G.WithShape(shape...), G.WithName("c"),
				G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(c))))
			op := newFakeQuant(tc.spec, tc.observer, 2)
			op.Params = tc.params
			y, err := G.ApplyOp(op, xn)
			if err != nil {
				t.Fatal(err)
			}
			prod, err := G.HadamardProd(y, cn)
			if err != nil {
				t.Fatal(err)
			}
			loss, err := G.Sum(prod)
			if err != nil {
				t.Fatal(err)
			}
			grads, err := G.Grad(loss, xn)
			if err != nil {
				t.Fatal(err)
			}
			vm := G.NewTapeMachine(g)
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			params := tc.params
			if tc.observer == ObserveEach {
				params = tc.spec.ParamsFor(x, shape)
			}
			wantY := make([]float32, len(x))
			tc.spec.FakeQuantize(x, params, wantY)
			inside := insideRef(tc.spec, x, params)
			gotY := y.Value().Data().([]float32)
			gotG := grads[0].Value().Data().([]float32)
			clipped := 0
			for i := range x {
				if gotY[i] != wantY[i] {
					t.Errorf("forward[%d] = %g, quantize-dequantize gives %g", i, gotY[i], wantY[i])
				}
				if want := c[i] * inside[i]; gotG[i] != want {
					t.Errorf("grad[%d] = %g, want %g (x = %g, inside = %g)", i, gotG[i], want, x[i], inside[i])
				}
				if inside[i] == 0 {
					clipped++
				}
			}
			if tc.clips && (clipped == 0 || clipped == len(x)) {
				t.Errorf("%d of %d values clipped: the case does not test the clipping", clipped, len(x))
			}
			if !tc.clips && clipped > 0 {
				t.Errorf("%d of %d values clipped, want none", clipped, len(x))
			}
		})
	}
}

// Wired into a network, a quantized layer's weight gradient is the float
// network's gradient at the fake-quantized weights, masked where they clipped.
func TestQATWeightGradient(t *testing.T) {
	spec := arch.Spec{Arch: "mlp", Inputs: 6, Hidden: []int{8}, Classes: 4}
	rng := rand.New(rand.NewPCG(1, 2))
	m := MustNew(spec, rng)
	q := quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
	for _, l := range m.WeightLayers() {
		l.Quant = &q
	}
	float := m.Clone()
	masks := map[string][]float32{}
	for _, l := range float.WeightLayers() {
		l.Quant = nil
		for _, w := range l.Weights {
			p := q.ParamsFor(w.Data, w.Shape)
			masks[w.Name] = insideRef(q, w.Data, p)
			q.FakeQuantize(w.Data, p, w.Data)
		}
	}
	run := func(m *Model) *Net {
		n, err := Build(m, NetOptions{Batch: 5, Mode: ModeTrain})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(9, 9))
		for i := range n.X {
			n.X[i] = float32(r.NormFloat64())
		}
		copy(n.Labels, []float32{0, 1, 2, 3, 1})
		if err := n.Run(); err != nil {
			t.Fatal(err)
		}
		return n
	}
	qn, fn := run(m), run(float)
	if qn.LastLoss().Loss != fn.LastLoss().Loss {
		t.Errorf("QAT loss %g, float loss at the fake-quantized weights %g", qn.LastLoss().Loss, fn.LastLoss().Loss)
	}
	for i, p := range qn.Params() {
		fg := fn.Params()[i].Grad()
		mask := masks[p.Name]
		for j, g := range p.Grad() {
			want := fg[j]
			if mask != nil {
				want *= mask[j]
			}
			if math.Abs(float64(g-want)) > 1e-6 {
				t.Fatalf("%s grad[%d] = %g, want %g", p.Name, j, g, want)
			}
		}
	}
}

// The moving-average observer follows torch.ao's MovingAverageMinMaxObserver:
// the first batch sets the range, later ones move it by 0.01 of the difference.
func TestMovingAverageObserver(t *testing.T) {
	op := newFakeQuant(quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}, MovingAverage, 1)
	batches := [][]float32{{-1, 2}, {-3, 4}, {0, 1}}
	wantMin, wantMax := float32(-1), float32(2)
	for i, b := range batches {
		if _, err := op.Do(tensor.New(tensor.WithShape(2), tensor.WithBacking(b))); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			wantMin += 0.01 * (b[0] - wantMin)
			wantMax += 0.01 * (b[1] - wantMax)
		}
		if op.runMin != wantMin || op.runMax != wantMax {
			t.Fatalf("after batch %d: range [%g, %g], want [%g, %g]", i+1, op.runMin, op.runMax, wantMin, wantMax)
		}
	}
}
