package qgemm

import "fmt"

// PlaneOutput is what Epilogue.Output does with each output channel's
// rescaled values v, in this order, each step optional: the output pass
// of a convolution on ConvTaps, so that its batch norm, residual add, ReLU
// and the next convolution's codes cost no passes of their own. Res and Y
// are planes of rows LdY apart, channel j's at j·PlaneY.
type PlaneOutput struct {
	// Scale, Shift: v = v·Scale[j] + Shift[j], the product and the sum
	// each rounded (an eval batch norm's x·a + b); nil: none.
	Scale, Shift []float32
	// Res: v = v + the residual; nil: none.
	Res []float32
	// ReLU: v = max(v, 0) as Go computes it (NaN stays, -0 becomes +0).
	ReLU bool
	// Y: the floats; nil: not stored.
	Y           []float32
	LdY, PlaneY int
	// Codes: the code of v with CodeParams and CodeRange (QuantizeWith's
	// rule and bits) at Codes[(j/4)·GroupCodes + j%4 + i·LdCodes + 4k] for
	// row i, column k: one byte of each position's 4, the layout ConvTaps
	// reads; nil: none. The other bytes are left as they are.
	Codes               []uint8
	LdCodes, GroupCodes int
	CodeParams          Params
	CodeRange           Range
}

// Output computes every output channel's m×n plane of ConvTaps sums
// (channel j's at acc[j·ldc:], rows ldacc apart): Dequantize's values
// (the same operations on channel j's constants), then o's steps.
func (e *Epilogue) Output(m, n int, acc []int32, ldacc, ldc int, o *PlaneOutput) {
	switch {
	case m < 0 || n < 0:
		panic(fmt.Sprintf("qgemm: Epilogue.Output of %d×%d: negative size", m, n))
	case o.Codes != nil && !o.CodeRange.valid():
		panic(fmt.Sprintf("qgemm: Epilogue.Output: code range %d", o.CodeRange))
	case (o.Scale == nil) != (o.Shift == nil) || o.Scale != nil && (len(o.Scale) < e.n || len(o.Shift) < e.n):
		panic(fmt.Sprintf("qgemm: Epilogue.Output: %d scales and %d shifts for %d channels", len(o.Scale), len(o.Shift), e.n))
	case ldc < 0 || o.PlaneY < 0 || o.GroupCodes < 0:
		// The extents below assume the last channel lies furthest: a
		// negative stride would let the kernel write before a slice.
		panic(fmt.Sprintf("qgemm: Epilogue.Output: negative plane stride (ldc %d, PlaneY %d, GroupCodes %d)", ldc, o.PlaneY, o.GroupCodes))
	}
	if m == 0 || n == 0 || e.n == 0 {
		return
	}
	need := func(s string, have, first, ld, width int) {
		if ld < width || have < first+(m-1)*ld+width {
			panic(fmt.Sprintf("qgemm: Epilogue.Output of %d channels of %d×%d: %s has %d values, rows %d apart, want %d", e.n, m, n, s, have, ld, first+(m-1)*ld+width))
		}
	}
	last := e.n - 1
	need("acc", len(acc), last*ldc, ldacc, n)
	if o.Res != nil {
		need("Res", len(o.Res), last*o.PlaneY, o.LdY, n)
	}
	if o.Y != nil {
		need("Y", len(o.Y), last*o.PlaneY, o.LdY, n)
	}
	if o.Codes != nil {
		// The last channel's codes start furthest unless groups are under
		// 3 bytes apart: then the previous group's fourth channel does.
		first := last/4*o.GroupCodes + last%4
		if last >= 4 {
			first = max(first, (last/4-1)*o.GroupCodes+3)
		}
		need("Codes", len(o.Codes), first, o.LdCodes, 4*n-3)
	}
	active.Load().planeOut(e, m, n, acc, ldacc, ldc, o)
}

func planeOutGo(e *Epilogue, m, n int, acc []int32, ldacc, ldc int, o *PlaneOutput) {
	var inv float32
	if o.Codes != nil {
		inv = 1 / o.CodeParams.Scale
	}
	for j := 0; j < e.n; j++ {
		zc, mult, bias := e.zc[j], e.mult[j], e.bias[j]
		for i := 0; i < m; i++ {
			for k, a := range acc[j*ldc+i*ldacc : j*ldc+i*ldacc+n] {
				v := float32(float32(a-zc)*mult) + bias
				if o.Scale != nil {
					v = float32(v*o.Scale[j]) + o.Shift[j]
				}
				at := j*o.PlaneY + i*o.LdY + k
				if o.Res != nil {
					v += o.Res[at]
				}
				if o.ReLU {
					v = max(v, 0)
				}
				if o.Y != nil {
					o.Y[at] = v
				}
				if o.Codes != nil {
					o.Codes[j/4*o.GroupCodes+j%4+i*o.LdCodes+4*k] = uint8(code(v, inv, o.CodeParams.ZeroPoint, int32(o.CodeRange)))
				}
			}
		}
	}
}
