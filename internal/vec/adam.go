// Package vec holds the element-wise kernels of training that the matrix
// products left dominant: the Adam update, the LSTM cell, batch norm's
// per-channel passes (bn.go), ReLU and adds (elt.go), in AVX2 or AVX-512
// assembly generated with avo (asm/) and in plain Go, bit-identical to each
// other.
package vec

import "math"

//go:generate go run asm/gen.go -out adam_amd64.s -stubs adam_stubs_amd64.go -pkg vec

// Consts are one Adam step's scalars, in the order the assembly reads them.
type Consts struct {
	B1, OneMinusB1, B2, OneMinusB2 float32
	WeightDecay, Eps               float32
	StepSize                       float32 // lr / (1 - b1^t)
	Bc2Sqrt                        float32 // sqrt(1 - b2^t)
}

// Adam updates w, m and v in place from the gradient g, as torch.optim.Adam's
// single-tensor path does in float32: gj = g + wd*w (times mask when mask is not
// nil: masked entries get no gradient, so their moments stay zero and a zero
// weight stays zero), m = b1*m + (1-b1)*gj, v = b2*v + (1-b2)*gj*gj,
// w -= step*m / (sqrt(v)/bc2sqrt + eps).
func Adam(w, g, m, v, mask []float32, c *Consts) {
	n := len(w)
	g, m, v = g[:n], m[:n], v[:n]
	if mask != nil {
		mask = mask[:n]
	}
	done := 0
	if useAVX2 && n >= 8 {
		done = n &^ 7
		var mp *float32
		if mask != nil {
			mp = &mask[0]
			adamMaskedAVX2(done, &w[0], &g[0], &m[0], &v[0], mp, &c.B1)
		} else {
			adamAVX2(done, &w[0], &g[0], &m[0], &v[0], &w[0], &c.B1)
		}
	}
	if mask != nil {
		adamScalar(w[done:], g[done:], m[done:], v[done:], mask[done:], c)
	} else {
		adamScalar(w[done:], g[done:], m[done:], v[done:], nil, c)
	}
}

// adamScalar is the update in Go, the assembly's reference and tail. Every
// product is rounded on its own (the float32 conversions): the Go spec lets a
// compiler fuse x*y + z into one FMA, which GOAMD64=v3 does, and the
// assembly does not fuse, so unrounded products would break bit-identity.
func adamScalar(w, g, m, v, mask []float32, c *Consts) {
	for j := range w {
		gj := g[j] + float32(c.WeightDecay*w[j])
		if mask != nil {
			gj *= mask[j]
		}
		m[j] = float32(c.B1*m[j]) + float32(c.OneMinusB1*gj)
		v[j] = float32(c.B2*v[j]) + float32(float32(c.OneMinusB2*gj)*gj)
		s := float32(math.Sqrt(float64(v[j])))
		w[j] -= float32(c.StepSize*m[j]) / (s/c.Bc2Sqrt + c.Eps)
	}
}
