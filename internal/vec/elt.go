package vec

import "math"

//go:generate go run asm/eltgen.go -out elt_amd64.s -stubs elt_stubs_amd64.go -pkg vec

// ReLU sets y = max(x, 0), Go's max: +0 for -0 and negative values, NaNs
// kept. The AVX-512 kernel gives the Go loop's bits (see asm/relugen.go).
func ReLU(y, x []float32) {
	x = x[:len(y)]
	if useReLU512 && len(y) > 0 {
		reluAVX512(len(y), &y[0], &x[0])
		return
	}
	reluRef(y, x)
}

// ReLUGrad sets dx = dy where the ReLU's output y is non-zero (its bits:
// y is +0 or positive) and +0 elsewhere.
func ReLUGrad(dx, y, dy []float32) {
	y, dy = y[:len(dx)], dy[:len(dx)]
	if useReLU512 && len(dx) > 0 {
		reluGradAVX512(len(dx), &dx[0], &y[0], &dy[0])
		return
	}
	reluGradRef(dx, y, dy)
}

func reluRef(y, x []float32) {
	for i, v := range x {
		y[i] = max(v, 0)
	}
}

func reluGradRef(dx, y, dy []float32) {
	for i, v := range y {
		// Branch-free, since ReLU's zeros fall at random.
		keep := -min(math.Float32bits(v), 1)
		dx[i] = math.Float32frombits(math.Float32bits(dy[i]) & keep)
	}
}

// Add sets y = a + b element-wise (y may be a or b): the bits of the Go
// loop y[i] = a[i] + b[i].
func Add(y, a, b []float32) {
	a, b = a[:len(y)], b[:len(y)]
	if useReLU512 && len(y) > 0 {
		addAVX512(len(y), &y[0], &a[0], &b[0])
		return
	}
	addRef(y, a, b)
}

func addRef(y, a, b []float32) {
	for i := range y {
		y[i] = a[i] + b[i]
	}
}

// SumReLU sets y = max(a + b, 0) element-wise (y may be a or b): the bits
// of Add then ReLU, in one pass (a residual add and the ReLU after it).
func SumReLU(y, a, b []float32) {
	a, b = a[:len(y)], b[:len(y)]
	if useReLU512 && len(y) > 0 {
		sumReLUAVX512(len(y), &y[0], &a[0], &b[0])
		return
	}
	sumReLURef(y, a, b)
}

func sumReLURef(y, a, b []float32) {
	for i := range y {
		y[i] = max(a[i]+b[i], 0)
	}
}

// SumReLUGrad sets dx = a + b where the ReLU's output y is non-zero (its
// bits) and +0 elsewhere: the bits of Add then ReLUGrad, in one pass (a
// gradient sum and the ReLU gradient that alone reads it). dx may be a or b.
func SumReLUGrad(dx, y, a, b []float32) {
	y, a, b = y[:len(dx)], a[:len(dx)], b[:len(dx)]
	if useReLU512 && len(dx) > 0 {
		sumReLUGradAVX512(len(dx), &dx[0], &y[0], &a[0], &b[0])
		return
	}
	sumReLUGradRef(dx, y, a, b)
}

func sumReLUGradRef(dx, y, a, b []float32) {
	for i, v := range y {
		keep := -min(math.Float32bits(v), 1)
		dx[i] = math.Float32frombits(math.Float32bits(a[i]+b[i]) & keep)
	}
}

// Gather2 sets dst[r·ldd + j] = src[r·lds + 2j] for r < rows, j < cols:
// every other value of rows of src (the patch rows of a stride-2
// convolution). A copy: any implementation gives the same bits.
func Gather2(dst []float32, ldd int, src []float32, lds int, rows, cols int) {
	if rows < 1 || cols < 1 {
		return
	}
	if rows > 1 && (ldd < 0 || lds < 0) {
		panic("vec: Gather2: negative leading dimension")
	}
	if len(dst) < (rows-1)*ldd+cols || len(src) < (rows-1)*lds+2*cols-1 {
		panic("vec: Gather2: operands too short for their shape")
	}
	if useReLU512 {
		gather2AVX512(&dst[0], ldd, &src[0], lds, rows, cols)
		return
	}
	gather2Ref(dst, ldd, src, lds, rows, cols)
}

func gather2Ref(dst []float32, ldd int, src []float32, lds int, rows, cols int) {
	for r := range rows {
		d, s := dst[r*ldd:r*ldd+cols], src[r*lds:r*lds+2*cols-1]
		for j := range d {
			d[j] = s[2*j]
		}
	}
}

// AddTo2 adds src[r·lds + j] to dst[r·ldd + 2j] for r < rows, j < cols
// (Gather2's transpose, col2im's rows at stride 2): each sum is the Go
// loop's, NaN payloads included.
func AddTo2(dst []float32, ldd int, src []float32, lds int, rows, cols int) {
	if rows < 1 || cols < 1 {
		return
	}
	if rows > 1 && (ldd < 0 || lds < 0) {
		panic("vec: AddTo2: negative leading dimension")
	}
	if len(dst) < (rows-1)*ldd+2*cols-1 || len(src) < (rows-1)*lds+cols {
		panic("vec: AddTo2: operands too short for their shape")
	}
	if useReLU512 {
		addTo2AVX512(&dst[0], ldd, &src[0], lds, rows, cols)
		return
	}
	addTo2Ref(dst, ldd, src, lds, rows, cols)
}

func addTo2Ref(dst []float32, ldd int, src []float32, lds int, rows, cols int) {
	for r := range rows {
		d, s := dst[r*ldd:r*ldd+2*cols-1], src[r*lds:r*lds+cols]
		for j, v := range s {
			d[2*j] += v
		}
	}
}
