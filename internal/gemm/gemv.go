package gemm

// Sgemv computes y = alpha*op(A)*x + beta*y for a row-major m×n matrix A
// (op(A) = Aᵀ if trans), with BLAS sgemv semantics: x and y are strided by
// incX and incY (negative increments walk backwards from the end),
// beta == 0 overwrites y without reading it, and invalid arguments panic
// with gonum's messages.
//
// op(A)·x is computed with one fixed summation order per shape, so results
// are reproducible bit for bit.
func Sgemv(trans bool, m, n int, alpha float32, a []float32, lda int, x []float32, incX int, beta float32, y []float32, incY int) {
	if m < 0 {
		panic(errMLT0)
	}
	if n < 0 {
		panic(errNLT0)
	}
	if lda < max(1, n) {
		panic(errBadLdA)
	}
	if incX == 0 {
		panic(errZeroIncX)
	}
	if incY == 0 {
		panic(errZeroIncY)
	}
	lenX, lenY := n, m
	if trans {
		lenX, lenY = m, n
	}
	if m == 0 || n == 0 {
		return
	}
	if (incX > 0 && (lenX-1)*incX >= len(x)) || (incX < 0 && (1-lenX)*incX >= len(x)) {
		panic(errShortX)
	}
	if (incY > 0 && (lenY-1)*incY >= len(y)) || (incY < 0 && (1-lenY)*incY >= len(y)) {
		panic(errShortY)
	}
	if len(a) < lda*(m-1)+n {
		panic(errShortA)
	}
	sgemv(active.Load(), trans, m, n, alpha, a, lda, x, incX, beta, y, incY)
}

// sgemv is Sgemv after validation (m, n ≥ 1), also used by Sgemm for
// products with one row or one column.
func sgemv(im *impl, trans bool, m, n int, alpha float32, a []float32, lda int, x []float32, incX int, beta float32, y []float32, incY int) {
	lenX, lenY := n, m
	if trans {
		lenX, lenY = m, n
	}
	if alpha == 0 {
		scaleVec(lenY, beta, y, incY)
		return
	}
	ws := wsPool.Get().(*workspace)
	defer wsPool.Put(ws)

	xs := x[:lenX]
	if incX != 1 {
		xs = growPlain(&ws.x, lenX)
		gather(xs, x, incX)
	}
	ys := y[:lenY]
	if incY != 1 {
		ys = growPlain(&ws.y, lenY)
		if beta != 0 {
			gather(ys, y, incY)
		}
	}
	if trans {
		im.gemvT(m, n, alpha, xs, a, lda, beta, ys)
	} else {
		im.gemvN(m, n, alpha, a, lda, xs, beta, ys)
	}
	if incY != 1 {
		scatter(y, ys, incY)
	}
}

// gather copies the strided vector v (BLAS layout: a negative increment
// starts at the far end) into dst.
func gather(dst, v []float32, inc int) {
	i := 0
	if inc < 0 {
		i = (1 - len(dst)) * inc
	}
	for j := range dst {
		dst[j] = v[i]
		i += inc
	}
}

// scatter is the inverse of gather.
func scatter(v, src []float32, inc int) {
	i := 0
	if inc < 0 {
		i = (1 - len(src)) * inc
	}
	for _, s := range src {
		v[i] = s
		i += inc
	}
}

// scaleVec sets the strided vector y of n elements to beta*y (to zero when
// beta == 0, so NaN does not survive).
func scaleVec(n int, beta float32, y []float32, inc int) {
	if beta == 1 {
		return
	}
	i := 0
	if inc < 0 {
		i = (1 - n) * inc
	}
	for range n {
		if beta == 0 {
			y[i] = 0
		} else {
			y[i] *= beta
		}
		i += inc
	}
}

// growPlain returns (*buf)[:n], reallocating if needed.
func growPlain(buf *[]float32, n int) []float32 {
	if cap(*buf) < n {
		*buf = make([]float32, n)
	}
	return (*buf)[:n]
}
