package sparse

// Worth reports whether a layer of out×in weights at this density runs
// faster on Mul than as a dense product (internal/gemm) at this batch
// size, on this kind of machine: the crossovers BenchmarkDensity measured
// on the project's 2-core AMD EPYC (AVX-512), where the sparse kernels
// beat the dense ones below 50-70% density for a single row (the dense
// product is then a memory-bound matrix-vector product), about 50% at 16
// rows and 25-40% at 256 (a dense GEMM reaches 200 GFLOP/s there; the
// sparse kernel's padded iterations do not). docs/PERFORMANCE.md has the
// sweep. The thresholds sit a
// little under the measured crossovers, so a layer near them stays dense:
// the gain would be small and the noise of a shared machine is not. On a
// CPU without AVX-512 the Go fallback runs, about 4 times slower, so only
// very sparse layers (under 10%) pay.
//
// in and out are accepted for a later shape-aware rule; today's sweep
// (784×300 and 300×100) found the crossovers to depend on the batch far
// more than on the shape.
func Worth(density float64, batch, in, out int) bool {
	if in == 0 || out == 0 || batch <= 0 {
		return false
	}
	return density < Threshold(batch)
}

// Threshold is the density below which Worth chooses sparse kernels for
// a batch of this many rows.
func Threshold(batch int) float64 {
	var t float64
	switch {
	case batch <= 1:
		t = 0.4
	case batch <= 16:
		t = 0.3
	case batch <= 64:
		t = 0.25
	default:
		t = 0.15
	}
	if Impl() != "avx512" {
		t = min(t, 0.1)
	}
	return t
}
