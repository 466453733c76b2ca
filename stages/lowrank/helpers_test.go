package lowrank

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
)

var oracleSpec = testkit.OracleSpec

// randomModel builds a model with PyTorch's default init from a fixed seed.
func randomModel(spec arch.Spec, seed uint64) *model.Model {
	return model.MustNew(spec, rand.New(rand.NewPCG(seed, 7)))
}

// randomMatrix is a rows x cols matrix of N(0, 1) entries.
func randomMatrix(rows, cols int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 11))
	w := make([]float64, rows*cols)
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	return w
}

// logits runs the model in eval mode on a fixed pseudo-random batch.
func logits(t *testing.T, m *model.Model, batch int) []float32 {
	t.Helper()
	net, err := model.Build(m, model.NetOptions{Batch: batch, Mode: model.ModeEval})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range net.X {
		net.X[i] = float32(rng.NormFloat64())
	}
	if err := net.Run(); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), net.Logits()...)
}

// maxAbsDiff is the largest |a_i - b_i| and the largest |a_i|.
func maxAbsDiff(a, b []float32) (diff, scale float64) {
	for i := range a {
		diff = max(diff, math.Abs(float64(a[i])-float64(b[i])))
		scale = max(scale, math.Abs(float64(a[i])))
	}
	return diff, scale
}

// frobeniusError is ||W - second x first||_F.
func frobeniusError(w []float64, second, first []float32, rows, k, cols int) float64 {
	p := model.Product(second, first, rows, k, cols)
	var sum float64
	for i := range w {
		sum += (w[i] - p[i]) * (w[i] - p[i])
	}
	return math.Sqrt(sum)
}

func toFloat64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// capture is a logger writing JSON lines into a buffer, for checking what the
// stage says.
func capture() (zerolog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return zerolog.New(&buf), &buf
}

func relClose(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(math.Abs(want), 1e-30)
}

var nopLog = zerolog.Nop()

func norm(w []float64) float64 {
	var s float64
	for _, x := range w {
		s += x * x
	}
	return math.Sqrt(s)
}
