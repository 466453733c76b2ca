package qgemm

import "fmt"

// PlaneOutput is what Epilogue.Output does with one output channel's
// rescaled values v, in this order, each step optional: the output pass of
// a convolution on ConvTaps, so that its batch norm, residual add, ReLU
// and the next convolution's codes cost no passes of their own.
type PlaneOutput struct {
	// Norm: v = v·Scale + Shift, the product and the sum each rounded (an
	// eval batch norm's x·a + b).
	Norm         bool
	Scale, Shift float32
	// Res: v = v + Res[i·LdY + k], rows LdY apart like Y's; nil: none.
	Res []float32
	// ReLU: v = max(v, 0) as Go computes it (NaN stays, -0 becomes +0).
	ReLU bool
	// Y: Y[i·LdY + k] = v; nil: the floats are not stored.
	Y   []float32
	LdY int
	// Codes: Codes[i·LdCodes + 4k + Lane] = the code of v with CodeParams
	// and CodeRange (QuantizeWith's rule and bits), one byte of each
	// position's 4, the layout ConvTaps reads; nil: none. The other bytes
	// are left as they are.
	Codes      []uint8
	LdCodes    int
	Lane       int
	CodeParams Params
	CodeRange  Range
}

// planeConsts are planeOutAVX512's constants, in the order it reads them.
type planeConsts struct {
	zc                            int32
	mult, bias, scale, shift, inv float32
	zp, qmax                      int32
}

// Output computes output channel j's m×n plane of ConvTaps sums (rows
// ldacc apart): DequantizePlane's values, then o's steps.
func (e *Epilogue) Output(j, m, n int, acc []int32, ldacc int, o *PlaneOutput) {
	switch {
	case j < 0 || j >= e.n:
		panic(fmt.Sprintf("qgemm: Epilogue.Output: channel %d of %d", j, e.n))
	case m < 0 || n < 0:
		panic(fmt.Sprintf("qgemm: Epilogue.Output of %d×%d: negative size", m, n))
	case o.Codes != nil && (o.Lane < 0 || o.Lane > 3 || !o.CodeRange.valid()):
		panic(fmt.Sprintf("qgemm: Epilogue.Output: code lane %d, range %d", o.Lane, o.CodeRange))
	}
	if m == 0 || n == 0 {
		return
	}
	short := func(s string, have, ld, width int) {
		if ld < width || have < (m-1)*ld+width {
			panic(fmt.Sprintf("qgemm: Epilogue.Output of %d×%d: %s has %d values %d apart, want rows of %d", m, n, s, have, ld, width))
		}
	}
	short("acc", len(acc), ldacc, n)
	if o.Res != nil {
		short("Res", len(o.Res), o.LdY, n)
	}
	if o.Y != nil {
		short("Y", len(o.Y), o.LdY, n)
	}
	if o.Codes != nil {
		short("Codes", len(o.Codes), o.LdCodes, 4*n)
	}
	k := planeConsts{zc: e.zc[j], mult: e.mult[j], bias: e.bias[j], scale: o.Scale, shift: o.Shift}
	if o.Codes != nil {
		k.inv, k.zp, k.qmax = 1/o.CodeParams.Scale, o.CodeParams.ZeroPoint, int32(o.CodeRange)
	}
	active.Load().planeOut(m, n, acc, ldacc, k, o)
}

func planeOutGo(m, n int, acc []int32, ldacc int, k planeConsts, o *PlaneOutput) {
	for i := 0; i < m; i++ {
		for c, a := range acc[i*ldacc : i*ldacc+n] {
			v := float32(float32(a-k.zc)*k.mult) + k.bias
			if o.Norm {
				v = float32(v*o.Scale) + o.Shift
			}
			if o.Res != nil {
				v += o.Res[i*o.LdY+c]
			}
			if o.ReLU {
				v = max(v, 0)
			}
			if o.Y != nil {
				o.Y[i*o.LdY+c] = v
			}
			if o.Codes != nil {
				o.Codes[i*o.LdCodes+4*c+o.Lane] = uint8(code(v, k.inv, k.zp, k.qmax))
			}
		}
	}
}
