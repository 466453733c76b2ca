package qgemm

import "fmt"

//go:generate go run asm/gen.go -out kernel_amd64.s -stubs kernel_stubs_amd64.go -pkg qgemm

// MaxK is the longest dot product Pack accepts: up to it every sum of
// products of uint8 and int8 values fits in int32 (65536·255·128 < 2³¹),
// so MatMul's results are exact.
const MaxK = 1 << 16

// Range is the largest activation code: Full for 8-bit activations
// (0..255), Reduced for PyTorch's reduce_range (0..127), which lets AVX2
// use a faster instruction that would saturate on 8-bit values.
type Range int32

const (
	Full    Range = 255
	Reduced Range = 127
)

func (r Range) valid() bool { return r == Full || r == Reduced }

// Packed is a weight matrix B of n rows (output units) by k int8 values,
// PyTorch's [out, in] layout, rearranged once for MatMul, with each row's
// sum for the activations' zero-point correction.
//
// The layout: slivers of 16 rows, each k/4 groups of 64 bytes holding
// the 16 rows' 4 values of the group (row j's at 4j), k rounded up to a
// multiple of 4 and n to a multiple of 64 with zeros. Every kernel reads
// it, so one Packed serves every implementation.
type Packed struct {
	n, k   int
	kp     int // k rounded up to a multiple of 4
	sliver int // bytes per sliver: kp·16
	data   []int8
	rowSum []int32
}

// Pack rearranges b (n rows of k values, row-major) for MatMul. It panics
// if b is shorter than n·k, or if n or k is negative or k > MaxK.
func Pack(b []int8, n, k int) *Packed {
	if n < 0 || k < 0 || k > MaxK {
		panic(fmt.Sprintf("qgemm: Pack of %d×%d: n and k must be ≥ 0 and k ≤ %d", n, k, MaxK))
	}
	if len(b) < n*k {
		panic(fmt.Sprintf("qgemm: Pack of %d×%d: b has %d values, want %d", n, k, len(b), n*k))
	}
	kp := roundUp(k, 4)
	p := &Packed{n: n, k: k, kp: kp, sliver: kp * 16, rowSum: make([]int32, n)}
	p.data = make([]int8, roundUp(n, 64)*kp)
	for j := 0; j < n; j++ {
		row := b[j*k : j*k+k]
		base := (j/16)*p.sliver + (j%16)*4
		var s int32
		for q, v := range row {
			p.data[base+(q/4)*64+q%4] = v
			s += int32(v)
		}
		p.rowSum[j] = s
	}
	return p
}

// N is the number of rows of B (the product's columns).
func (p *Packed) N() int { return p.n }

// K is the length of B's rows.
func (p *Packed) K() int { return p.k }

// RowSums returns Σ_q b[j][q] for each row j of B (not a copy: do not
// modify it).
func (p *Packed) RowSums() []int32 { return p.rowSum }

// MatMul sets C = A·Bᵀ exactly in int32: C[i][j] = Σ_q a[i*lda+q]·B[j][q]
// for i < m, j < b.N(), with c[i*ldc+j] holding C[i][j]. A is m rows of
// b.K() activation codes, each at most r; with Reduced, codes above 127
// give unspecified results on AVX2 machines. The result does not depend
// on the implementation: every path computes the exact integer sums.
//
// MatMul panics if the slices are too short for the shape or a leading
// dimension is smaller than its row. It allocates nothing in steady state.
func MatMul(m int, a []uint8, lda int, r Range, b *Packed, c []int32, ldc int) {
	if lda < max(1, b.k) {
		panic(fmt.Sprintf("qgemm: MatMul: lda %d < k %d", lda, b.k))
	}
	matMul("MatMul", m, a, lda, r, b, c, ldc, false)
}

// MatMulAdd is MatMul adding the product to C (C += A·Bᵀ, wrapping in
// int32 like the sums themselves), and its rows of A may overlap: lda
// may be smaller than k (at least 1). A convolution over an image stored
// channels-last reads a row of its filter taps that way, consecutive
// pixels' rows sharing their values, and sums its filter's rows of taps
// with one call each.
func MatMulAdd(m int, a []uint8, lda int, r Range, b *Packed, c []int32, ldc int) {
	if lda < 1 {
		panic(fmt.Sprintf("qgemm: MatMulAdd: lda %d < 1", lda))
	}
	matMul("MatMulAdd", m, a, lda, r, b, c, ldc, true)
}

func matMul(fn string, m int, a []uint8, lda int, r Range, b *Packed, c []int32, ldc int, add bool) {
	n, k := b.n, b.k
	switch {
	case m < 0:
		panic("qgemm: " + fn + ": m < 0")
	case !r.valid():
		panic(fmt.Sprintf("qgemm: %s: range %d is neither Full nor Reduced", fn, r))
	case ldc < max(1, n):
		panic(fmt.Sprintf("qgemm: %s: ldc %d < n %d", fn, ldc, n))
	}
	if m == 0 || n == 0 {
		return
	}
	if len(c) < (m-1)*ldc+n {
		panic(fmt.Sprintf("qgemm: %s: c has %d values, want %d for %d×%d", fn, len(c), (m-1)*ldc+n, m, n))
	}
	if k == 0 { // A has no values to read
		if !add {
			for i := 0; i < m; i++ {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	if len(a) < (m-1)*lda+k {
		panic(fmt.Sprintf("qgemm: %s: a has %d values, want %d for %d×%d", fn, len(a), (m-1)*lda+k, m, k))
	}
	matmul(active.Load(), m, a, lda, r, b, c, ldc, add)
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }
