// Package planar computes stride-1 "same" convolutions (kernel 2p+1,
// padding p: ResNet's 3x3 convolutions) at inference on channels-first
// data, vectorized over output POSITIONS: a tile of R output channels by
// V vectors of 16 consecutive positions is R·V accumulators, and each
// (tap, input channel) step loads the V input vectors shifted by the tap
// and multiplies them by the R filter weights (AVX-512 embedded
// broadcasts). internal/gemm's Taps vectorizes over output channels and
// wastes lanes when they are not a multiple of its tile width (a
// structurally pruned network's 11, 25 or 42 channels); positions come in
// hundreds per image, so no lane is wasted at any width, and the data
// needs no transposes to and from the channels-last layout.
//
// Positions run over the images of a chunk without separators: an input
// vector whose lanes would read the padding, or across the edge of an
// image, row or chunk, is loaded under a mask that zeroes those lanes (a
// table of masks per tap and vector, made once per geometry), so each
// output is the same FMA chain it is on the padded layout of gemm.Taps.
//
// Bits: every output element is one chain of fused multiply-adds over the
// taps in order and, within a tap, the input channels in order, the taps
// cut into blocks exactly as gemm.Taps cuts them (gemm.TapsPerBlock), the
// first block's sum stored and each later block's sum added to it. That is
// gemm.Taps' arithmetic on its asm kernels, so a convolution computed here
// gives the same bits as nn's tall-layout path. The pure-Go kernel (no
// AVX-512, the purego build tag, or SHRINK_GEMM=purego / SHRINK_PLANAR=
// purego) computes the same chains with an exact float32 fused
// multiply-add (fma32), so both give identical results.
package planar
