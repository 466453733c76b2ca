package gemm

// TapsPerBlock is how many of a convolution's taps Taps sums in one
// accumulator chain for k input channels per tap: taps·k split into equal
// blocks of at most the kernels' k block. Code that must give Taps' bits
// another way (package planar) cuts its sums where Taps does.
func TapsPerBlock(taps, k int) int {
	kc := active.Load().kc
	blocks := (taps*k + kc - 1) / kc
	return (taps + blocks - 1) / blocks
}

// KBlock is the k block Sgemm and SgemmSerial cut a product of depth k
// into (the last block may be shorter): each block's sum is one
// accumulator chain, added to C in block order.
func KBlock(k int) int { return kBlock(k, active.Load().kc) }
