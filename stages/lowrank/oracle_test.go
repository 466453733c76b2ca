package lowrank

import (
	"math"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/internal/testkit"
)

// TestOracleRank3 checks rank-3 factorizations of mlp_s1's layers against
// torch.linalg.svd: the singular values (1e-5 relative), Eckart-Young's optimal
// error, our error within 1.01 of it, the layout and the bias.
func TestOracleRank3(t *testing.T) {
	want := testkit.Oracle(t, "lowrank_k3.safetensors")
	m := testkit.OracleModel(t)
	for _, l := range m.WeightLayers() {
		t.Run(l.Name, func(t *testing.T) {
			w := l.DenseWeight()
			bias := append([]float32(nil), l.Bias().Data...)
			d, err := decompose(w, l.Units(), l.FanIn())
			if err != nil {
				t.Fatal(err)
			}
			sv := testkit.Floats(t, want, l.Name+".singular_values")
			if len(sv) != len(d.values) {
				t.Fatalf("%d singular values, torch has %d", len(d.values), len(sv))
			}
			for i, s := range sv {
				if !relClose(d.values[i], float64(s), 1e-5) {
					t.Errorf("singular value %d: %g, torch %g", i, d.values[i], s)
				}
			}
			optimal := float64(testkit.Floats(t, want, l.Name+".optimal_error")[0])
			if got := d.optimalError(3); !relClose(got, optimal, 1e-5) {
				t.Errorf("optimal rank-3 error %g, torch %g", got, optimal)
			}

			rep, err := factorLayer(l, rule{rank: 3}, nopLog)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Result != Factored || l.Rank != 3 {
				t.Fatalf("result %q rank %d, want factored at rank 3", rep.Result, l.Rank)
			}
			first, second := l.Weights[0], l.Weights[1]
			if first.Name != l.Name+".0.weight" || !slices.Equal(first.Shape, []int{3, l.FanIn()}) ||
				second.Name != l.Name+".1.weight" || !slices.Equal(second.Shape, []int{l.Units(), 3}) {
				t.Fatalf("layout %s %v, %s %v", first.Name, first.Shape, second.Name, second.Shape)
			}
			got := frobeniusError(w, second.Data, first.Data, l.Units(), 3, l.FanIn())
			// Eckart-Young: the truncated SVD is the optimum, so only float32
			// rounding may separate them (measured: 1e-8 to 4e-8 relative).
			if math.Abs(got-optimal) > 1e-6*optimal {
				t.Errorf("||W - BA||_F = %g, the optimal rank-3 error is %g (relative gap %.2g)", got, optimal, math.Abs(got-optimal)/optimal)
			}
			// The same bound holds for torch's own factors: the file and the rule agree.
			if e := frobeniusError(w, testkit.Floats(t, want, l.Name+".1.weight"), testkit.Floats(t, want, l.Name+".0.weight"), l.Units(), 3, l.FanIn()); e > 1.01*optimal {
				t.Fatalf("torch's factors miss the bound: %g > %g", e, optimal)
			}
			if l.BiasName() != l.Name+".1.bias" || !slices.Equal(l.Bias().Data, bias) || !slices.Equal(l.Bias().Data, testkit.Floats(t, want, l.Name+".1.bias")) {
				t.Errorf("bias %s %v, want the original %v", l.BiasName(), l.Bias().Data, bias)
			}
			if !relClose(rep.ReconstructionError*norm(w), got, 1e-9) {
				t.Errorf("reported relative error %g, measured %g / %g", rep.ReconstructionError, got, norm(w))
			}
		})
	}
}

// TestOracleEnergy checks that the energy rule picks torch's ranks and that the
// cumulative energy fractions agree; through the stage, a rank the dense
// fallback rejects keeps the layer dense.
func TestOracleEnergy(t *testing.T) {
	want := testkit.Oracle(t, "lowrank_energy.safetensors")
	energies := testkit.Floats(t, want, "energies")
	for _, name := range []string{"fc1", "fc2", "fc3"} {
		t.Run(name, func(t *testing.T) {
			rt, _ := want.Get(name + ".energy_rank")
			ranks, err := rt.Int64s()
			if err != nil || len(ranks) != len(energies) {
				t.Fatalf("energy_rank: %v", err)
			}
			cum := testkit.Floats(t, want, name+".energy_cumulative")
			for i, e := range energies {
				m := testkit.OracleModel(t)
				l := m.Layer(name)
				d, err := decompose(l.DenseWeight(), l.Units(), l.FanIn())
				if err != nil {
					t.Fatal(err)
				}
				got := cumulativeEnergy(d.values)
				for j := range cum {
					if !relClose(got[j], float64(cum[j]), 1e-5) {
						t.Errorf("cumulative energy %d: %g, torch %g", j, got[j], cum[j])
					}
				}
				if k := energyRank(d.values, float64(e)); k != int(ranks[i]) {
					t.Errorf("energy %g: rank %d, torch %d", e, k, ranks[i])
				}
				rep, err := factorLayer(l, rule{energy: float64(e)}, nopLog)
				if err != nil {
					t.Fatal(err)
				}
				k := int(ranks[i])
				wantResult, wantRank := Factored, k
				if k*(l.Units()+l.FanIn()) >= l.Units()*l.FanIn() {
					wantResult, wantRank = KeptDense, 0
				}
				if rep.Result != wantResult || l.Rank != wantRank {
					t.Errorf("energy %g: %s at rank %d, want %s at rank %d", e, rep.Result, l.Rank, wantResult, wantRank)
				}
				if wantResult == Factored && rep.EnergyKept < float64(e) {
					t.Errorf("energy %g: kept only %g", e, rep.EnergyKept)
				}
			}
		})
	}
}
