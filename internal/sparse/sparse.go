package sparse

import (
	"fmt"
	"unsafe"
)

//go:generate go run asm/gen.go -out kernel_amd64.s -stubs kernel_stubs_amd64.go -pkg sparse

// Matrix is a pruned weight matrix W [out × in] (PyTorch's Linear layout)
// stored for y = x·Wᵀ + b at inference: only the nonzero weights, with
// float32 values or int8 values and a scale per row.
type Matrix struct {
	f *format
}

// New stores the nonzeros of w, out rows of in values (row-major). It
// panics if w is shorter than out·in or a size is negative.
func New(w []float32, out, in int) *Matrix {
	checkShape("New", len(w), out, in)
	return &Matrix{build(out, in, false, func(r, j int) (float32, int8, bool) {
		v := w[r*in+j]
		return v, 0, v != 0
	})}
}

// NewInt8 stores the nonzeros of q, out rows of in int8 values, with one
// scale per row: W[r][j] = scale[r]·q[r][j], Deep Compression's pruned and
// quantized layers (or PyTorch's per-channel symmetric int8 weights).
// Rows are computed as scale[r]·Σ q[r][j]·x[j]: the sum in float32, then
// one multiplication.
func NewInt8(q []int8, scale []float32, out, in int) *Matrix {
	checkShape("NewInt8", len(q), out, in)
	if len(scale) != out {
		panic(fmt.Sprintf("sparse: NewInt8: %d scales for %d rows", len(scale), out))
	}
	f := build(out, in, true, func(r, j int) (float32, int8, bool) {
		v := q[r*in+j]
		return 0, v, v != 0
	})
	f.scale = make([]float32, f.slices*lanes)
	copy(f.scale, scale)
	return &Matrix{f}
}

func checkShape(fn string, n, out, in int) {
	if out < 0 || in < 0 {
		panic(fmt.Sprintf("sparse: %s of %d×%d: negative size", fn, out, in))
	}
	if n < out*in {
		panic(fmt.Sprintf("sparse: %s of %d×%d: %d values, want %d", fn, out, in, n, out*in))
	}
}

// Out is the number of rows of W (outputs).
func (m *Matrix) Out() int { return m.f.out }

// In is the number of columns of W (inputs).
func (m *Matrix) In() int { return m.f.in }

// NNZ is the number of nonzero weights stored.
func (m *Matrix) NNZ() int { return m.f.nnz }

// Density is NNZ / (Out·In), 0 for an empty matrix.
func (m *Matrix) Density() float64 {
	if m.f.out == 0 || m.f.in == 0 {
		return 0
	}
	return float64(m.f.nnz) / float64(m.f.out*m.f.in)
}

// Bytes is the size of the stored format, which the kernels read once
// per row of x: values, column offsets, chunk offsets, run lengths and
// scales, padding included.
func (m *Matrix) Bytes() int {
	f := m.f
	return 4*len(f.runs) + 4*len(f.off) + len(f.idx) + 4*len(f.f32) + len(f.i8) + 4*len(f.scale)
}

// Mul sets y = x·Wᵀ + bias for batch rows: x has batch rows of In() values
// ldx apart, y batch rows of Out() values ldy apart; bias has Out() values
// or is nil. Each output is a sum in a fixed order that depends only on W
// (see the package documentation), so results are reproducible bit for
// bit, identical for every batch size, and identical between the
// assembly and the Go fallback. A NaN or infinite input may reach outputs
// whose row has no weight at its column (as it reaches every output of a
// dense product). Mul panics if a slice is too short.
func (m *Matrix) Mul(batch int, x []float32, ldx int, bias, y []float32, ldy int) {
	f := m.f
	switch {
	case batch < 0:
		panic("sparse: Mul: batch < 0")
	case ldx < max(1, f.in) || ldy < max(1, f.out):
		panic(fmt.Sprintf("sparse: Mul: ldx %d and ldy %d must be at least in %d and out %d", ldx, ldy, f.in, f.out))
	case bias != nil && len(bias) != f.out:
		panic(fmt.Sprintf("sparse: Mul: bias has %d values, want %d", len(bias), f.out))
	case batch > 0 && (len(x) < (batch-1)*ldx+f.in || len(y) < (batch-1)*ldy+f.out):
		panic(fmt.Sprintf("sparse: Mul: x has %d values and y %d, want %d and %d for a batch of %d", len(x), len(y), (batch-1)*ldx+f.in, (batch-1)*ldy+f.out, batch))
	}
	if batch == 0 || f.out == 0 {
		return
	}
	if f.in == 0 {
		for b := 0; b < batch; b++ {
			row := y[b*ldy : b*ldy+f.out]
			if bias == nil {
				clear(row)
			} else {
				copy(row, bias)
			}
		}
		return
	}
	active.Load().mul(f, batch, x, ldx, bias, y, ldy)
}

// MulVec is Mul for one row: y = W·x + bias.
func (m *Matrix) MulVec(x, bias, y []float32) {
	m.Mul(1, x, max(1, m.f.in), bias, y, max(1, m.f.out))
}

// args fills the kernel arguments that do not depend on the call.
func (f *format) args() kernelArgs {
	a := kernelArgs{slices: f.slices, last: f.in / chunk * chunk * 4}
	if len(f.runs) > 0 {
		a.runs = &f.runs[0]
	}
	if len(f.off) > 0 {
		a.off = &f.off[0]
	}
	if len(f.idx) > 0 {
		a.idx = &f.idx[0]
		if f.i8 != nil {
			a.val = unsafe.Pointer(&f.i8[0])
		} else {
			a.val = unsafe.Pointer(&f.f32[0])
		}
	}
	if f.scale != nil {
		a.scale = &f.scale[0]
	}
	a.xmask = 1<<(f.in%chunk) - 1
	a.ymask = 1<<(f.out-(f.slices-1)*lanes) - 1
	return a
}
