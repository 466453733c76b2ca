package nn_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
)

// TestEmbeddingRejectsBadIDs: a value that is not a token id of the
// vocabulary stops the forward pass with an error naming the layer, the
// sample and the position, in training and in eval.
func TestEmbeddingRejectsBadIDs(t *testing.T) {
	spec := arch.Spec{Input: arch.Shape{3}, Classes: 2, Layers: []arch.LayerSpec{
		arch.NewLayer("tokens", "embedding", map[string]any{"num": 10, "dim": 2}),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc", "linear", map[string]any{"out": 2}),
	}}
	m := model.MustNew(spec, rand.New(rand.NewPCG(1, 2)))
	for _, tc := range []struct {
		id   float32
		want string
	}{
		{10, "token id 10 at sample 1 of the batch, position 2 is outside 0..9"},
		{-1, "token id -1 at sample 1 of the batch, position 2 is outside 0..9"},
		{1e9, "token id 1000000000 at sample 1"},
		{2.5, "input 2.5 at sample 1 of the batch, position 2 is not a whole number"},
		{float32(math.NaN()), "is not a whole number"},
		{float32(math.Inf(1)), "is not a whole number"},
	} {
		x := []float32{1, 2, 3, 4, 5, tc.id}
		t.Run("train", func(t *testing.T) {
			net, err := model.Build(m, model.NetOptions{Batch: 2, Mode: model.ModeTrain})
			if err != nil {
				t.Fatal(err)
			}
			copy(net.X, x)
			err = net.Run()
			if err == nil || !strings.Contains(err.Error(), "tokens: embedding: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("id %g: error %v, want one naming layer tokens and saying %q", tc.id, err, tc.want)
			}
		})
		t.Run("eval", func(t *testing.T) {
			_, err := model.Logits(context.Background(), m, &data.Split{N: 2, Shape: []int{3}, Features: 3, X: x, Y: []int32{0, 1}}, 2)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("id %g: error %v, want one saying %q", tc.id, err, tc.want)
			}
		})
	}
}

// TestEmbeddingGradientScatterAdds: ids that repeat add their gradients into
// one row; rows no id chose get none.
func TestEmbeddingGradientScatterAdds(t *testing.T) {
	spec := arch.Spec{Input: arch.Shape{4}, Classes: 8, Layers: []arch.LayerSpec{
		arch.NewLayer("emb", "embedding", map[string]any{"num": 5, "dim": 2}),
		arch.NewLayer("", "flatten", nil),
	}}
	m := model.MustNew(spec, rand.New(rand.NewPCG(3, 4)))
	net, err := model.Build(m, model.NetOptions{Batch: 2, Mode: model.ModeTrain})
	if err != nil {
		t.Fatal(err)
	}
	ids := []float32{3, 1, 3, 3, 0, 3, 1, 1}
	copy(net.X, ids)
	net.Labels[0], net.Labels[1] = 2, 7
	if err := net.Run(); err != nil {
		t.Fatal(err)
	}
	// The logits are the looked-up rows themselves, so d loss / d logits is
	// each position's gradient.
	dy := make([]float32, 16)
	model.Loss{}.Compute(net.Logits(), nil, net.Labels, 8, dy)
	want := make([]float32, 10)
	for i, id := range ids {
		for j := range 2 {
			want[int(id)*2+j] += dy[i*2+j]
		}
	}
	got := net.Params()[0].Grad()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("weight gradient %v, want %v", got, want)
		}
	}
	for _, j := range []int{4, 5, 8, 9} { // rows 2 and 4: no id
		if got[j] != 0 {
			t.Errorf("gradient of an unused row: %v", got)
		}
	}
	w := m.Layer("emb").Weights[0].Data
	for i, id := range ids {
		for j := range 2 {
			if net.Logits()[i*2+j] != w[int(id)*2+j] {
				t.Fatalf("position %d: %v, want row %g of the weight", i, net.Logits()[i*2:i*2+2], id)
			}
		}
	}
}
