package vec

// ReLU sets y[i] = max(y[i], 0) with Go's max: NaN stays NaN, -0 becomes
// +0, the same bits as the scalar loop.
func ReLU(y []float32) {
	done := 0
	if useAVX2 && len(y) >= 8 {
		done = len(y) &^ 7
		reluAVX2(done, &y[0])
	}
	for i, v := range y[done:] {
		y[done+i] = max(v, 0)
	}
}

// AddReLU sets y[i] = max(y[i] + r[i], 0) (one rounded addition, then
// ReLU's max), for a residual add and its ReLU in one pass.
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

// ScaleShift sets y[i] = y[i]*a + b, a multiply then an add, each rounded
// (the scalar loop's bits at GOAMD64=v1, which shrink's builds pin): a
// batch norm in evaluation.
func ScaleShift(y []float32, a, b float32) {
	done := 0
	if useAVX2 && len(y) >= 8 {
		done = len(y) &^ 7
		scaleShiftAVX2(done, &y[0], a, b)
	}
	for i, v := range y[done:] {
		y[done+i] = v*a + b
	}
}
