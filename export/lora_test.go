package export

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/compress"
	"github.com/shrink-ml/shrink/model"
)

// A LoRA checkpoint (NF4 base, adapters, frozen layers) exports dense as the
// plain model its adapters merge into, and its compressed export loads back
// as the same LoRA model.
func TestLoRAExports(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	m := model.MustNew(arch.Spec{Arch: "mlp", Inputs: 40, Hidden: []int{24}, Classes: 5}, rng)
	fc1 := m.Layer("fc1")
	fc1.Frozen = model.FrozenParams
	mustT(t, fc1.AddAdapter(3, 6, false, 0, rng))
	for i := range fc1.Adapter.B.Data {
		fc1.Adapter.B.Data[i] = float32(rng.NormFloat64())
	}
	mustT(t, fc1.QuantizeNF4(64, true))
	_, ref := saved(t, m)

	_, _, got := denseBack(t, ref)
	want := ref.Clone()
	want.MergeAdapters()
	if err := sameModel(want, got); err != nil {
		t.Fatal(err)
	}
	if got.HasAdapters() || got.Layer("fc1").Frozen != model.Trainable {
		t.Fatal("the dense export still has adapters or frozen layers")
	}

	split := testSplit(ref.Spec, 7)
	a, err := model.Logits(context.Background(), ref, split, 3)
	mustT(t, err)
	cf, _ := saved(t, ref)
	b, err := Measure(cf, 1)
	mustT(t, err)
	if b.Bytes <= 0 {
		t.Fatal("no compressed size")
	}
	enc, err := compress.Encode(cf)
	mustT(t, err)
	cpath := filepath.Join(t.TempDir(), "model.shrink")
	mustT(t, os.WriteFile(cpath, enc, 0o644))
	back, err := LoadModel(cpath, nil)
	mustT(t, err)
	c, err := model.Logits(context.Background(), back, split, 3)
	mustT(t, err)
	if !sameBits(a, c) || !back.HasAdapters() || back.Layer("fc1").Weights[0].NF4 == nil {
		t.Error("the compressed export does not load back as the same LoRA model")
	}
}
