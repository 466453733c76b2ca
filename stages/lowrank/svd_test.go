package lowrank

import (
	"math"
	"slices"
	"testing"
)

// TestFullRankReproduces checks that keeping every singular value gives W back
// and that the square roots are split evenly: both factors' row/column norms
// carry sqrt(s_i).
func TestFullRankReproduces(t *testing.T) {
	for _, tc := range []struct{ rows, cols int }{{8, 6}, {6, 8}, {5, 5}, {1, 7}, {30, 150}} {
		t.Run("", func(t *testing.T) {
			w := randomMatrix(tc.rows, tc.cols, 1)
			d, err := decompose(w, tc.rows, tc.cols)
			if err != nil {
				t.Fatal(err)
			}
			k := min(tc.rows, tc.cols)
			first, second := d.factors(k)
			if e := frobeniusError(w, second, first, tc.rows, k, tc.cols); e > 1e-5*norm(w) {
				t.Errorf("%dx%d: full-rank error %g", tc.rows, tc.cols, e)
			}
			for i := 0; i < k; i++ {
				var a, b float64
				for r := 0; r < tc.rows; r++ {
					a += float64(second[r*k+i]) * float64(second[r*k+i])
				}
				for c := 0; c < tc.cols; c++ {
					b += float64(first[i*tc.cols+c]) * float64(first[i*tc.cols+c])
				}
				if !relClose(a, d.values[i], 1e-5) || !relClose(b, d.values[i], 1e-5) {
					t.Errorf("factor %d: squared norms %g and %g, want s = %g in both", i, a, b, d.values[i])
				}
			}
		})
	}
}

// TestSignsAreFixed checks the sign convention: in every column of
// NAME.1.weight (U sqrt(S)) the largest-magnitude entry is positive, whatever
// the sign of W, and the factors do not depend on anything but W.
func TestSignsAreFixed(t *testing.T) {
	const rows, cols, k = 12, 9, 4
	w := randomMatrix(rows, cols, 2)
	neg := make([]float64, len(w))
	for i, x := range w {
		neg[i] = -x
	}
	var firsts [][]float32
	for _, m := range [][]float64{w, slices.Clone(w), neg} {
		d, err := decompose(m, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		first, second := d.factors(k)
		for i := 0; i < k; i++ {
			best := 0.0
			for r := 0; r < rows; r++ {
				if math.Abs(float64(second[r*k+i])) > math.Abs(best) {
					best = float64(second[r*k+i])
				}
			}
			if best <= 0 {
				t.Errorf("column %d of NAME.1.weight: largest-magnitude entry %g is not positive", i, best)
			}
		}
		firsts = append(firsts, first)
	}
	if !slices.Equal(firsts[0], firsts[1]) {
		t.Error("the same weights gave different factors")
	}
	// -W = (-U) S V^T; with U's sign fixed, the minus lands on V.
	for i := range firsts[0] {
		if firsts[2][i] != -firsts[0][i] {
			t.Fatalf("NAME.0.weight of -W is not the negation of W's at %d: %g vs %g", i, firsts[2][i], firsts[0][i])
		}
	}
}

func TestEnergyRank(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []float64
		energy float64
		want   int
	}{
		{"all energy", []float64{3, 2, 1}, 1, 3},
		{"tiny energy", []float64{3, 2, 1}, 1e-9, 1},
		{"at a boundary", []float64{4, 3}, 16.0 / 25, 1},
		{"just past a boundary", []float64{4, 3}, 16.0/25 + 1e-12, 2},
		{"zero tail", []float64{2, 0, 0}, 1, 1},
		{"all zero", []float64{0, 0}, 0.5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := energyRank(tc.values, tc.energy); got != tc.want {
				t.Errorf("energyRank(%v, %g) = %d, want %d", tc.values, tc.energy, got, tc.want)
			}
		})
	}
}

func TestOptimalError(t *testing.T) {
	d := &decomposition{values: []float64{5, 4, 3}}
	for k, want := range []float64{math.Sqrt(50), 5, 3, 0} {
		if got := d.optimalError(k); math.Abs(got-want) > 1e-12 {
			t.Errorf("optimalError(%d) = %g, want %g", k, got, want)
		}
	}
}

// optimalError is Eckart-Young's minimum of ||W - P||_F over rank-k matrices P:
// the norm of the dropped singular values.
func (d *decomposition) optimalError(k int) float64 {
	var sum float64
	for _, s := range d.values[min(k, len(d.values)):] {
		sum += s * s
	}
	return math.Sqrt(sum)
}
