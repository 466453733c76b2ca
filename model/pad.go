package model

import "github.com/shrink-ml/shrink/data"

// padRows fills rows n..batch-1 of x, a batch of batch equal rows, with copies of
// row 0. Padding rows count for nothing in the loss or the accuracy, but a
// quantizer that observes a whole batch (dynamic activations, QAT's moving
// averages) would see them: copies of a real row leave its range as the real rows
// alone make it, so results never depend on how a split was cut into batches.
func padRows(x []float32, n, batch int) {
	if n >= batch {
		return
	}
	if n == 0 {
		clear(x)
		return
	}
	row := len(x) / batch
	for r := n; r < batch; r++ {
		copy(x[r*row:(r+1)*row], x[:row])
	}
}

// loadBatch copies the rows of s from start (at most a batch) into the net's
// input, padding a short last batch, and returns them: how many, and their
// labels.
func (n *Net) loadBatch(s *data.Split, start int) (rows int, labels []int32) {
	batch := len(n.X) / s.Features
	rows = min(batch, s.N-start)
	x, y := s.Batch(start/batch, batch)
	copy(n.X, x)
	padRows(n.X, rows, batch)
	n.SetRows(rows)
	return rows, y
}
