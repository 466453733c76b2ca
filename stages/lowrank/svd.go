package lowrank

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// decomposition is the thin SVD W = U diag(S) V^T of a rows x cols matrix, in
// float64, with every singular vector pair's sign fixed so that the same weights
// always give the same factors.
type decomposition struct {
	rows, cols int
	values     []float64  // descending, min(rows, cols) of them
	u, v       *mat.Dense // rows x r and cols x r
}

// decompose factors a row-major rows x cols matrix.
func decompose(w []float64, rows, cols int) (*decomposition, error) {
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(rows, cols, w), mat.SVDThin) {
		return nil, fmt.Errorf("the SVD of a %dx%d matrix did not converge", rows, cols)
	}
	d := &decomposition{rows: rows, cols: cols, values: svd.Values(nil), u: &mat.Dense{}, v: &mat.Dense{}}
	svd.UTo(d.u)
	svd.VTo(d.v)
	d.fixSigns()
	return d, nil
}

// fixSigns flips each pair (u_i, v_i) so that u_i's largest-magnitude entry (the
// first of equals) is positive, scikit-learn's svd_flip convention: the SVD alone
// leaves each pair's sign to the LAPACK path taken.
func (d *decomposition) fixSigns() {
	for i := range d.values {
		best, at := 0.0, 0
		for r := 0; r < d.rows; r++ {
			if a := math.Abs(d.u.At(r, i)); a > best {
				best, at = a, r
			}
		}
		if d.u.At(at, i) >= 0 {
			continue
		}
		for r := 0; r < d.rows; r++ {
			d.u.Set(r, i, -d.u.At(r, i))
		}
		for c := 0; c < d.cols; c++ {
			d.v.Set(c, i, -d.v.At(c, i))
		}
	}
}

// factors returns the rank-k factors with the singular values split as square
// roots into both: first = sqrt(S_k) V_k^T (k x cols, NAME.0.weight) and
// second = U_k sqrt(S_k) (rows x k, NAME.1.weight), row-major float32.
func (d *decomposition) factors(k int) (first, second []float32) {
	first = make([]float32, k*d.cols)
	second = make([]float32, d.rows*k)
	for i := 0; i < k; i++ {
		root := math.Sqrt(d.values[i])
		for c := 0; c < d.cols; c++ {
			first[i*d.cols+c] = float32(root * d.v.At(c, i))
		}
		for r := 0; r < d.rows; r++ {
			second[r*k+i] = float32(root * d.u.At(r, i))
		}
	}
	return first, second
}

// cumulativeEnergy is, for each k, the share of the squared Frobenius norm held by
// the top k singular values (the last entry is 1 unless W is zero).
func cumulativeEnergy(values []float64) []float64 {
	out := make([]float64, len(values))
	var total float64
	for _, s := range values {
		total += s * s
	}
	var sum float64
	for i, s := range values {
		sum += s * s
		out[i] = sum / total
	}
	return out
}

// energyRank is the smallest k whose top singular values hold at least energy of
// the squared Frobenius norm (at least 1; 1 for an all-zero weight).
func energyRank(values []float64, energy float64) int {
	for i, f := range cumulativeEnergy(values) {
		if f >= energy {
			return i + 1
		}
	}
	// Only reached when the total is zero (every fraction NaN).
	return 1
}
