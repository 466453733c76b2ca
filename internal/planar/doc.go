// Package planar computes convolutions with an odd kernel, "same" padding
// ((k-1)/2), no groups or dilation and equal strides (all of ResNet's) at
// inference on channels-first data, vectorized over output POSITIONS: a
// tile of r output channels by v vectors of 16 consecutive positions is
// r·v accumulators, and each (tap, input channel) step loads the v input
// vectors shifted by the tap and multiplies them by the r filter values
// (AVX-512 embedded broadcasts). internal/gemm's Taps vectorizes over
// output channels and wastes lanes when they are not a multiple of its
// tile width (a structurally pruned network's 11, 25 or 42 channels);
// positions come in hundreds per image, so no lane is wasted at any width,
// and the data need no transposes to and from a channels-last layout.
//
// An input vector whose lanes would read the padding, or across the edge
// of an image, row or chunk, is loaded under a mask that zeroes those lanes
// (a table of masks per tap and vector, made once per geometry), and the
// output is stored under a mask of the positions, so large images are
// computed in place and small ones on a copy where the positions of a
// chunk's images run on without separators. A stride-s convolution reads
// s² phase planes (the input's rows and columns by their residue mod s, on
// the output's grid), in which each tap is again a constant shift.
//
// Bits: every output element is one chain of fused multiply-adds in the
// order of the path it replaces, cut into the same blocks (Order):
// gemm.Taps' for stride-1 convolutions (nn's tall layout), an im2col
// product's through gemm.SgemmSerial for the others. The first block's sum
// is stored and each later block's added to it, as gemm's kernels do with
// alpha 1 and beta 1. So a convolution computed here gives the bits nn
// computed before. The pure-Go kernel (no AVX-512, the purego build tag,
// or SHRINK_GEMM=purego / SHRINK_PLANAR=purego) computes the same chains
// with an exact float32 fused multiply-add (fma32), so both give identical
// results.
package planar
