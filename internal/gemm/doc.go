// Package gemm is a fast, deterministic float32 matrix multiply for shrink's
// default (cgo-free) build, used as the BLAS under gorgonia and tensor.
//
// # Use
//
//	gemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
//	gemm.Sgemv(trans, m, n, alpha, a, lda, x, incX, beta, y, incY)
//	gemm.SetThreads(2)         // default 1; results do not depend on it
//	gorgonia.Use(gemm.BLAS{})  // gonum's BLAS with Sgemm/Sgemv replaced
//
// Both functions have row-major BLAS semantics (gonum's blas32): beta == 0
// overwrites the output without reading it, alpha == 0 or k == 0 only
// scale it, and bad arguments panic with gonum's messages.
//
// The kernels are chosen once at start-up: AVX-512F if the CPU has it,
// else AVX2+FMA, else portable Go (also under the purego build tag and off
// amd64). SHRINK_GEMM=purego forces the Go kernels, SHRINK_GEMM=avx2 the
// AVX2 ones; Impl reports the choice.
//
// # Measured speed
//
// GFLOP/s (2mnk per second), median of 5 runs of `go test -bench Sgemm
// -count 5` with the range in brackets, on the 2-core AMD EPYC (Zen 5)
// KVM guest shrink builds on (48 KiB L1d and 1 MiB L2 per core), GOAMD64=v1,
// go1.26. The machine was shared with other jobs, so the low end of each
// range is noise; the high end is what the code does on a quiet core.
// "t2" is SetThreads(2). gonum is gonum's Implementation.Sgemm, which
// spreads large products over GOMAXPROCS (2) goroutines by itself.
//
//	@@TABLE@@
//
// Steady-state calls allocate nothing (0 allocs/op in every row above but
// gonum's). The shapes are LeNet-300-100 at batch 128 (fc*_fwd: x·W;
// fc1_dW: xᵀ·dZ; fc2_dX: dZ·Wᵀ), inference at batch 1000 and 1, and
// LeNet-5's convolutions as gorgonia's im2col runs them for 128 images
// and for one (patches·filtersᵀ, then dX and dW).
//
// # Design
//
// The product is the BLIS loop nest: B in nc-column panels, k in kc-deep
// blocks, A in mc-row blocks, then nr-wide slivers of packed B and mr-row
// slivers of A, each pair handed to an asm micro-kernel that keeps the
// whole mr×nr tile of C in registers for the kc-long sum.
//
//   - Micro-kernels (asm/gen.go, generated with avo): 12×32 with AVX-512F
//     (24 zmm accumulators), 6×16 with AVX2+FMA (12 ymm accumulators, all
//     16 registers used); BenchmarkTiles measured the alternatives. For
//     n ≤ 16 (resp. 8) a 24×16 (12×8) tile avoids computing mostly padding.
//     Loads of B and broadcasts of A feed one FMA per accumulator per k
//     step, k unrolled by 4.
//   - Blocking: kc = 256 keeps a packed B sliver in L1 (32 KiB for 12×32),
//     mc = 120 rows of A stream past it from L2, nc = 3072 bounds the B
//     panel. k is cut into equal blocks (784 → 4×196, not 3×256 + 16).
//     The shapes above all fit in L2, and the timings hardly move with kc
//     in 128..512 or mc in 48..240.
//   - Packing: the kernels read A with a row stride, so a non-transposed A
//     is not packed at all (only a ragged last sliver is copied); a
//     transposed A is transposed into a buffer, 8×8 blocks at a time, and
//     so is a transposed B. A plain B is copied in nr-wide runs.
//     Buffers come from a sync.Pool and only grow.
//   - Edges: AVX-512 kernels mask their loads and stores of C, so ragged
//     tiles are computed in place; the AVX2 and Go kernels compute a full
//     tile into scratch and copy the valid part.
//   - One row or one column of C (batch-1 inference, gorgonia's MatVecMul)
//     goes to matrix-vector kernels that stream the matrix once.
//   - Threads: a product with m·n·k ≥ 2^20 is cut into two parts per
//     thread, whole tiles along the dimension that duplicates less
//     packing; the caller and the helper goroutines claim parts from an
//     atomic counter, so a helper that starts late (its core busy) costs
//     at most a part. Smaller products run on the caller alone.
//
// # Determinism
//
// For a given shape and implementation family the result is bit-identical
// on every call and for every thread count. Every element of C is one FMA
// chain over p in increasing order within each k block, scaled by alpha
// and added to beta·C (then to C for later blocks) the same way, whichever
// tile, kernel or goroutine computes it; the k blocks depend only on k.
// The AVX2 and AVX-512 kernels therefore agree bit for bit; the Go
// kernels (no FMA) differ from them in the last bits, as all of these do
// from gonum. Products with one row or one column use the matrix-vector
// kernels, whose order is also fixed per shape.
//
// # Regenerating the asm
//
//	go generate ./internal/gemm
//
// runs asm/gen.go, which writes kernel_amd64.s and kernel_stubs_amd64.go.
package gemm
