package stages

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/model"
)

// TestTrainStateRoundTripAndPartialRefusal: a saved training state restores
// the weights, moments and random source; one that lacks a tensor is refused
// whole, leaving the model and the random source as they were (a half-restored
// model would train on silently from a mix).
func TestTrainStateRoundTripAndPartialRefusal(t *testing.T) {
	spec := arch.Spec{Arch: "mlp", Inputs: 6, Hidden: []int{5}, Classes: 3}
	saved := model.MustNew(spec, rand.New(rand.NewPCG(1, 1)))
	src := rand.NewPCG(7, 7)
	src.Uint64()
	st := &model.TrainState{Epoch: 2, Opt: &model.OptState{Step: 9, LR: 0.01, Moments: [][]float32{{1, 2}, {3}}}}
	path := filepath.Join(t.TempDir(), "state.safetensors")
	if err := saveTrainState(path, stateOf(saved, ""), st, src); err != nil {
		t.Fatal(err)
	}

	fresh := model.MustNew(spec, rand.New(rand.NewPCG(2, 2)))
	got := rand.NewPCG(0, 0)
	back, err := loadTrainState(path, stateOf(fresh, ""), got)
	if err != nil {
		t.Fatal(err)
	}
	if back.epoch != 2 || back.opt.Step != 9 || len(back.opt.Moments) != 2 || got.Uint64() != src.Uint64() {
		t.Fatalf("state %+v", back)
	}
	for i, l := range fresh.WeightLayers() {
		if !slices.Equal(l.Weights[0].Data, saved.WeightLayers()[i].Weights[0].Data) || !slices.Equal(l.Bias().Data, saved.WeightLayers()[i].Bias().Data) {
			t.Fatalf("layer %s not restored", l.Name)
		}
	}

	// Drop the last bias: weights come before it, so a restore that copied as
	// it went would already have changed them.
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Tensors = slices.DeleteFunc(f.Tensors, func(x checkpoint.Tensor) bool { return x.Name == "w:fc2.bias" })
	if _, err := checkpoint.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	other := model.MustNew(spec, rand.New(rand.NewPCG(3, 3)))
	before := other.Clone()
	rng := rand.NewPCG(5, 5)
	if _, err := loadTrainState(path, stateOf(other, ""), rng); err == nil {
		t.Fatal("a state without fc2.bias was accepted")
	}
	for i, l := range other.WeightLayers() {
		if !slices.Equal(l.Weights[0].Data, before.WeightLayers()[i].Weights[0].Data) || !slices.Equal(l.Bias().Data, before.WeightLayers()[i].Bias().Data) {
			t.Errorf("layer %s changed by a refused state", l.Name)
		}
	}
	if rng.Uint64() != rand.NewPCG(5, 5).Uint64() {
		t.Error("the random source changed by a refused state")
	}
}

// TestTrainStateRefusesAChangedFile: one flipped bit in a saved state's
// weights parses as a valid file, so only its seal tells; the state is refused
// and the model left as it was.
func TestTrainStateRefusesAChangedFile(t *testing.T) {
	spec := arch.Spec{Arch: "mlp", Inputs: 6, Hidden: []int{5}, Classes: 3}
	saved := model.MustNew(spec, rand.New(rand.NewPCG(1, 1)))
	st := &model.TrainState{Epoch: 1, Opt: &model.OptState{Step: 3, LR: 0.01}}
	path := filepath.Join(t.TempDir(), "state.safetensors")
	if err := saveTrainState(path, stateOf(saved, ""), st, rand.NewPCG(7, 7)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0x01 // a bias's low mantissa bit: still a fine float
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	other := model.MustNew(spec, rand.New(rand.NewPCG(3, 3)))
	before := other.Clone()
	if _, err := loadTrainState(path, stateOf(other, ""), rand.NewPCG(5, 5)); !errors.Is(err, checkpoint.ErrSeal) {
		t.Fatalf("got %v, want a seal error", err)
	}
	if !slices.Equal(other.WeightLayers()[1].Bias().Data, before.WeightLayers()[1].Bias().Data) {
		t.Error("a refused state changed the model")
	}
}
