package qgemm

import "fmt"

// Dequantize turns MatMul's m×n result acc (rows ldacc apart) into floats
// in y (rows ldy apart):
//
//	y[i][o] = float32(float32(acc[i][o] - a.ZeroPoint*rowSum[o]) * mult[o]) + bias[o]
//	mult[o] = a.Scale * wScale[o]
//
// with every operation rounded to float32 on its own (no fused
// multiply-add) and the integer correction exact (in int32, wrapping like
// MatMul), so every implementation gives the same bits. rowSum is
// w.RowSums(): the weights are symmetric (zero point 0, PyTorch's qint8
// weights), so only the activations' zero point needs correcting. wScale
// has one entry (per tensor) or w.N() (per output channel); bias has
// w.N() entries or is nil (zeros are added then, the same bits as none).
func Dequantize(m int, acc []int32, ldacc int, a Params, w *Packed, wScale, bias []float32, y []float32, ldy int) {
	dequantize("Dequantize", m, acc, ldacc, a, w, wScale, bias, y, ldy, false, false)
}

// DequantizeReLU is Dequantize followed by a ReLU in the same pass:
// y[i][o] = max(value, 0) as Go's max computes it (NaN stays NaN, -0
// becomes +0), so a linear layer and the ReLU after it give the bits the
// two separate passes give, reading and writing y once.
func DequantizeReLU(m int, acc []int32, ldacc int, a Params, w *Packed, wScale, bias []float32, y []float32, ldy int) {
	dequantize("DequantizeReLU", m, acc, ldacc, a, w, wScale, bias, y, ldy, false, true)
}

// DequantizeAdd is Dequantize adding to y: y[i][o] += the value above,
// one more rounded addition. An LSTM step sums its input and hidden
// products, each quantized with its own parameters, this way.
func DequantizeAdd(m int, acc []int32, ldacc int, a Params, w *Packed, wScale, bias []float32, y []float32, ldy int) {
	dequantize("DequantizeAdd", m, acc, ldacc, a, w, wScale, bias, y, ldy, true, false)
}

func dequantize(fn string, m int, acc []int32, ldacc int, a Params, w *Packed, wScale, bias []float32, y []float32, ldy int, add, relu bool) {
	n := w.n
	checkConstants(fn, n, wScale, bias)
	checkResult(fn, m, n, acc, ldacc, y, ldy)
	if m == 0 || n == 0 {
		return
	}
	ws := wsPool.Get().(*workspace)
	defer wsPool.Put(ws)
	zc := growInt32(&ws.zc, n)
	mult := growFloat32(&ws.mult, n)
	constants(zc, mult, a, w.rowSum, wScale)
	if bias == nil {
		bias = growFloat32(&ws.zero, n)
		clear(bias)
	}
	active.Load().dequant(m, n, acc, ldacc, zc, mult, bias, y, ldy, add, relu)
}

// constants fills the per-column zero-point corrections and multipliers
// that Dequantize and NewEpilogue both use, so they give the same bits.
func constants(zc []int32, mult []float32, a Params, rowSum []int32, wScale []float32) {
	for o := range zc {
		zc[o] = a.ZeroPoint * rowSum[o]
		mult[o] = a.Scale * wScale[min(o, len(wScale)-1)]
	}
}

func checkConstants(fn string, n int, wScale, bias []float32) {
	switch {
	case len(wScale) != 1 && len(wScale) != n:
		panic(fmt.Sprintf("qgemm: %s: %d weight scales for %d output channels, want 1 or %d", fn, len(wScale), n, n))
	case bias != nil && len(bias) != n:
		panic(fmt.Sprintf("qgemm: %s: bias has %d values, want %d", fn, len(bias), n))
	}
}

func checkResult(fn string, m, n int, acc []int32, ldacc int, y []float32, ldy int) {
	switch {
	case m < 0:
		panic(fmt.Sprintf("qgemm: %s: m < 0", fn))
	case ldacc < max(1, n) || ldy < max(1, n):
		panic(fmt.Sprintf("qgemm: %s: ldacc %d and ldy %d must be at least n %d", fn, ldacc, ldy, n))
	case m > 0 && n > 0 && (len(acc) < (m-1)*ldacc+n || len(y) < (m-1)*ldy+n):
		panic(fmt.Sprintf("qgemm: %s of %d×%d: acc has %d values and y %d, want %d and %d", fn, m, n, len(acc), len(y), (m-1)*ldacc+n, (m-1)*ldy+n))
	}
}

// Epilogue is Dequantize's per-column constants for fixed activation
// parameters (a statically quantized layer's), computed once: the
// zero-point corrections and multipliers Dequantize derives on every
// call, with the same operations, so the results are the same bits.
type Epilogue struct {
	n    int
	zc   []int32
	mult []float32
	bias []float32
}

// NewEpilogue prepares Dequantize's constants for activations quantized
// with a, weights w with scales wScale (1 or w.N()) and bias (w.N() values
// or nil). The slices are copied.
func NewEpilogue(a Params, w *Packed, wScale, bias []float32) *Epilogue {
	n := w.n
	checkConstants("NewEpilogue", n, wScale, bias)
	e := &Epilogue{n: n, zc: make([]int32, n), mult: make([]float32, n), bias: make([]float32, n)}
	constants(e.zc, e.mult, a, w.rowSum, wScale)
	copy(e.bias, bias)
	return e
}

// Dequantize is qgemm.Dequantize (or DequantizeReLU, with relu) with the
// epilogue's constants, for an m×N() result acc.
func (e *Epilogue) Dequantize(m int, acc []int32, ldacc int, y []float32, ldy int, relu bool) {
	n := e.n
	checkResult("Epilogue.Dequantize", m, n, acc, ldacc, y, ldy)
	if m == 0 || n == 0 {
		return
	}
	active.Load().dequant(m, n, acc, ldacc, e.zc, e.mult, e.bias, y, ldy, false, relu)
}
