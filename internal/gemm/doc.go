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
// GFLOP/s (2mnk per second): median and range of 5 runs of
// `go test -bench Sgemm -benchtime 200ms -count 5`, on the 2-vCPU AMD EPYC
// (Zen 5, AVX-512) KVM guest that shrink builds and tests on (48 KiB L1d,
// 1 MiB L2 per core), go1.26, GOAMD64=v1. Other jobs share this machine
// on and off: this run caught a quiet spell, and runs during busy ones
// came out up to 3× lower. "t2" is SetThreads(2); products under 2^22
// multiply-adds stay on one thread, so their t1 and t2 agree, and the
// second vCPU's gain varies with what the host runs beside it. "gonum" is
// gonum's Implementation.Sgemm, which splits large products over
// GOMAXPROCS (2) goroutines by itself; "purego" is the fallback's kernel.
// The two rows in model/ops.go's layouts (fc1_fwd_..._NT, fc1_dX) were
// added later and show, per cell, the better of two runs.
//
//	shape (m x n x k)             avx512 t1      avx512 t2        avx2 t1        avx2 t2         purego          gonum
//	fc1_fwd_128x300x784       201 (177-222)  264 (262-265)  122 (120-124)  163 (141-164)  5.8 (5.6-5.9)     32 (32-33)
//	fc1_fwd_128x300x784_NT    201 (188-204)  238 (235-239)  114 (113-114)  156 (153-157)  5.7 (3.5-5.7)     14 (10-18)
//	fc2_fwd_128x100x300       188 (179-190)  188 (176-190)  110 (109-111)  110 (108-112)  6.0 (5.8-6.1)     16 (16-17)
//	fc3_fwd_128x10x100         120 (96-122)  121 (120-122)     68 (67-70)     68 (68-69)  5.1 (5.0-5.1)  5.1 (3.7-5.4)
//	fc1_dW_784x300x128_TN     234 (213-236)  282 (257-283)  127 (124-128)  120 (109-173)  5.9 (5.5-6.1)     17 (16-19)
//	fc1_dWt_300x784x128_TN    245 (240-250)  213 (128-292)  126 (114-130)  152 (123-171)  6.1 (6.0-6.1)     21 (21-22)
//	fc2_dX_128x300x100_NT     212 (210-214)  210 (206-212)  121 (119-121)  120 (120-121)  6.1 (5.3-6.2)     32 (31-32)
//	fc1_dX_128x784x300        207 (204-218)  205 (180-207)  115 (107-117)  112 (109-114)  5.6 (5.5-5.6)     16 (16-16)
//	infer_1000x300x784        242 (240-244)  421 (413-423)  129 (128-131)  128 (111-233)  6.0 (4.3-6.1)     32 (25-32)
//	infer_1x300x784              42 (42-42)     42 (41-42)     42 (42-42)     42 (39-43)  6.2 (5.9-6.3)     13 (11-14)
//	conv1_fwd_73728x6x25_NT      76 (75-77)     98 (95-99)     46 (46-46)     63 (63-64)  4.2 (4.1-4.2)  8.0 (7.5-9.2)
//	conv1_dX_73728x25x6       135 (131-136)  161 (156-165)     36 (33-39)     40 (37-57)  4.1 (4.0-4.2)  7.8 (7.6-8.0)
//	conv1_dW_6x25x73728_TN       53 (51-54)     53 (50-55)     54 (51-54)     61 (60-62)  3.2 (3.1-3.2)     10 (10-11)
//	conv2_fwd_8192x16x150_NT  236 (231-237)  283 (276-285)  132 (129-132)  168 (168-169)  6.1 (6.1-6.1)     29 (28-30)
//	conv2_dX_8192x150x16      212 (205-216)  261 (235-263)   103 (82-106)   138 (91-138)  5.5 (5.5-5.5)     18 (16-19)
//	conv2_dW_16x150x8192_TN   113 (112-113)    91 (86-120)     81 (81-82)   101 (98-102)  4.2 (4.0-4.5)     16 (14-19)
//	conv1_1img_576x6x25_NT       71 (66-72)     72 (71-72)     44 (40-45)     44 (44-45)  4.2 (4.2-4.2)  7.2 (6.8-7.2)
//	conv2_1img_64x16x150_NT   166 (164-167)  166 (165-167)  113 (112-114)  112 (112-114)  5.8 (5.7-5.8)     23 (23-23)
//
// Steady-state calls allocate nothing (0 allocs/op in every row above but
// gonum's). The shapes are LeNet-300-100 at batch 128 (fc*_fwd: x·W, or
// x·Wᵀ with W stored out×in as model/ops.go keeps it; fc1_dW: xᵀ·dZ and
// fc1_dWt: dZᵀ·x; fc2_dX: dZ·Wᵀ and fc1_dX: dZ·W), inference at batch
// 1000 and 1, and LeNet-5's convolutions as gorgonia's im2col runs them
// for 128 images and for one (patches·filtersᵀ, then dX and dW).
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
//     16 registers used). Best-of-15 timings on fc1_fwd: 6×16 116, 4×24
//     106, 12×8 95 GFLOP/s; 12×32 216, 8×48 210, 14×32 204, 24×16 185
//     (BenchmarkTiles repeats the comparison). For n ≤ 16 (AVX2: n ≤ 8)
//     a 24×16 (12×8) tile avoids computing mostly padding. Per k step the
//     kernel loads a row of the B sliver, broadcasts each A value and
//     issues one FMA per accumulator; k is unrolled by 4.
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
//   - Threads: a product with m·n·k ≥ 2^22 is cut into two parts per
//     thread, whole tiles along the dimension that duplicates less
//     packing; the caller and the parked helper goroutines claim parts
//     from an atomic counter, so a helper that wakes late (its vCPU busy)
//     costs at most a part. Smaller products run on the caller alone:
//     waking a helper takes tens of microseconds on this VM.
//
// # Determinism
//
// For a given shape and implementation family the result is bit-identical
// on every call and for every thread count. Every element of C is one FMA
// chain over p in increasing order within each k block, scaled by alpha
// and added to beta·C (then to C for later blocks) the same way, whichever
// tile, kernel or goroutine computes it; the k blocks depend only on k.
// The AVX2 and AVX-512 kernels therefore agree bit for bit (they share
// kc = 256), so dev machines and CI agree whichever they have; the Go
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
