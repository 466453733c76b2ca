//go:build !(openblas && cgo)

// Package openblas routes shrink's matrix products to OpenBLAS when built with
// `-tags openblas` (cgo and libopenblas-dev needed: apt-get install
// libopenblas-dev). Without the tag it does nothing and the pure-Go build's own
// kernels (package gemm) run.
package openblas

// Enabled reports that products go to OpenBLAS.
const Enabled = false
