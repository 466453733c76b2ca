package model

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/internal/sparse"
)

// NetOptions.Sparse puts the sparse op in an eval graph, for the named
// layers only, and never in a training one.
func TestSparseLayersInEvalGraph(t *testing.T) {
	m := MustNew(arch.Spec{Arch: "mlp", Inputs: 20, Hidden: arch.Widths{16}, Classes: 3}, rand.New(rand.NewPCG(1, 2)))
	w := m.Layer("fc1").Weights[0]
	opts := map[string]*sparse.Matrix{"fc1": sparse.New(w.Data, w.Shape[0], w.Shape[1])}
	for _, c := range []struct {
		mode Mode
		want int
	}{{ModeEval, 1}, {ModeTrain, 0}} {
		net, err := Build(m, NetOptions{Batch: 4, Mode: c.mode, Sparse: opts})
		if err != nil {
			t.Fatal(err)
		}
		ops := 0
		for _, node := range net.g.AllNodes() {
			if node.Op() != nil && strings.HasSuffix(node.Op().String(), ".sparse") {
				ops++
			}
		}
		if ops != c.want {
			t.Errorf("mode %d: %d sparse ops, want %d", c.mode, ops, c.want)
		}
	}
}
