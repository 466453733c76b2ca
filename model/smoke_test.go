package model

import (
	"math/rand/v2"
	"testing"

	"github.com/shrink-ml/shrink/arch"
)

func TestSmokeBuild(t *testing.T) {
	for _, spec := range []arch.Spec{{Arch: "mlp", Inputs: 6, Hidden: []int{8}, Classes: 5}, {Arch: "lenet5", Classes: 10}} {
		m := New(spec, rand.New(rand.NewPCG(1, 2)))
		n, err := Build(m, NetOptions{Batch: 4, Mode: ModeTrain})
		if err != nil {
			t.Fatal(err)
		}
		for i := range n.X {
			n.X[i] = float32(i%7) * 0.1
		}
		copy(n.Labels, []float32{0, 1, 2, Ignore})
		if err := n.Run(); err != nil {
			t.Fatal(err)
		}
		t.Log(spec.Arch, n.LastLoss(), len(n.Params()), n.Params()[0].Grad()[:3])
		if err := n.Run(); err != nil {
			t.Fatal(err)
		}
		t.Log(spec.Arch, n.LastLoss())
	}
}
