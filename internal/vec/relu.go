package vec

// AddReLU sets y[i] = max(y[i] + r[i], 0) (one rounded addition, then
// Go's max: NaN stays NaN, -0 becomes +0), for a residual add and its
// ReLU in one pass.
func AddReLU(y, r []float32) {
	r = r[:len(y)]
	done := 0
	if useAVX2 && len(y) >= 8 {
		done = len(y) &^ 7
		addReluAVX2(done, &y[0], &r[0])
	}
	for i, v := range y[done:] {
		y[done+i] = max(v+r[done+i], 0)
	}
}
