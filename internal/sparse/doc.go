// Package sparse multiplies by pruned weight matrices at inference: a
// layer pruned without structure stores only its nonzeros, and y = x·Wᵀ + b
// costs time in proportion to them.
//
// # Use
//
//	m := sparse.New(w, out, in)              // W float32 [out × in], zeros dropped
//	m := sparse.NewInt8(q, scale, out, in)   // or int8 values, one scale per row
//	m.Mul(batch, x, in, bias, y, out)        // y = x·Wᵀ + bias, x [batch × in]
//	m.MulVec(x, bias, y)                     // batch 1
//	if sparse.Worth(density, batch, in, out) { ... }  // faster than internal/gemm?
//
// Build a Matrix once per layer (it copies what it needs) and call Mul as
// often as needed, from any number of goroutines; it allocates nothing.
//
// # Format
//
// Rows are taken 16 at a time, one per lane of an AVX-512 vector, and
// columns 32 at a time, a chunk of x held in two vector registers. Each
// step (an "iteration") loads 16 column offsets within the chunk and 16
// values, lane r belonging to row r, and VPERMI2PS fetches each lane's x
// from the two registers: a gather with no memory access per element,
// where VGATHERDPS would cost as much as the arithmetic saved. A slice of
// rows takes, in each chunk, as many iterations as its row with the most
// nonzeros there; the other lanes are padded with zeros. At 8% density a
// row has 2.6 nonzeros per chunk and its slice needs about 6 iterations,
// so about half of the work is padding, traded for a loop without a
// branch that depends on the data (which mispredicted on every chunk in
// the first design). Iterations come in pairs per chunk, which share
// their loads of x, and runs of four, the unrolling; see format.go.
//
// A batch runs four rows of x at a time, each iteration's offsets and
// values loaded once for the four.
//
// # Numerics
//
// Each output is a sum of rounded products in an order fixed by W alone:
// lane sums a[i mod 4] over the slice's iterations i, then
// (a0 + a1) + (a2 + a3), then times the row's scale (int8), then plus the
// bias, each operation rounded to float32 (no fused multiply-add). So
// results are reproducible bit for bit, identical for every batch size
// and between the AVX-512 kernels and the Go fallback; they differ from
// a dense product's in the last bits, as any two summation orders do. A
// NaN or infinite input may reach outputs whose row has no weight at its
// column (a dense product sends it to all of them).
//
// # Implementations
//
// "avx512" if the CPU has AVX-512F, else "purego" (also under the purego
// build tag, with SHRINK_SPARSE=purego, or SHRINK_GEMM=purego, shrink's
// switch for all of its assembly). Impl reports the choice.
//
// # Regenerating the assembly
//
//	go generate ./internal/sparse
//
// runs asm/gen.go (avo), which writes kernel_amd64.s and
// kernel_stubs_amd64.go.
package sparse
