package model

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
