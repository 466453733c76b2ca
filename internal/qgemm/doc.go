// Package qgemm multiplies uint8 activations by int8 weights exactly in
// int32, for quantized linear, convolution (as im2col) and LSTM layers,
// with the dynamic quantization and the float output those layers need.
//
// # Use
//
//	w := qgemm.Pack(weights, out, in)                       // int8 [out × in], once
//	p := qgemm.Quantize(batch, in, x, in, qgemm.Reduced, q, in) // float → codes
//	qgemm.MatMul(batch, q, in, qgemm.Reduced, w, acc, out)   // acc = q·Wᵀ, int32
//	qgemm.Dequantize(batch, acc, out, p, w, wScale, bias, y, out)
//
// That is PyTorch's dynamic quantized Linear (torch.ao.nn.quantized.dynamic):
// the activations quantized per tensor, per call, to quint8 codes (0..127
// with reduce_range, which PyTorch's dynamic layers use, or 0..255), the
// weights symmetric qint8 per tensor or per output channel.
// DequantizeAdd sums a second product into the same output, as an LSTM
// step adds its input and hidden projections.
//
// # Numerics
//
// MatMul is exact: every path (AVX-512 VNNI, AVX2, Go) computes the same
// integer sums, so results never depend on the machine. Pack limits k to
// MaxK, where no sum can overflow int32.
//
// Quantize follows torch.ao's MinMaxObserver for quint8 bit for bit
// (quant.Affine: the block's range widened to include 0, scale =
// (max - min) / qmax in float32 and at least 2^-23, zero point =
// -round_half_even(min / scale) clamped to 0..qmax; codes =
// clamp(round_half_even(x·float32(1/scale)) + zero point, 0, qmax) with the
// product in float32), checked against PyTorch in testdata. PyTorch's
// dynamic kernels themselves choose the scale in double precision
// (fbgemm's ChooseQuantizationParams), which is one float32 ulp away from
// the observer's in about a quarter of random inputs (the zero point
// agreed in all of 6000 tried); the codes then differ rarely and by one.
// NaN activations are left out of the range.
//
// Dequantize computes, per output o,
//
//	y = float32(float32(acc - zp·rowSum[o]) · (aScale·wScale[o])) + bias[o]
//
// every operation rounded to float32 on its own, in that order, so the
// assembly and Go agree bit for bit; the integer correction is exact.
// Against PyTorch's float output (whose epilogue rounds differently) it
// differs by a few ulps (testdata: at most 1e-6 relative).
//
// # Implementations
//
// Chosen at start-up: "vnni" (AVX-512 VNNI's VPDPBUSD: four u8×s8
// products summed into an int32 lane without saturation), else "avx2",
// else "purego". SHRINK_QGEMM=purego|avx2|vnni overrides the choice (the
// latter two if the CPU has them), and SHRINK_GEMM=purego, shrink's
// switch for all of its assembly, also selects Go. Impl reports the
// choice. The AVX2 path uses VPMADDUBSW, whose int16 pair sums cannot
// saturate for 7-bit activations (127·127·2 < 32767), when MatMul is told
// the codes are Reduced; for Full (8-bit) codes, where it could
// (255·127·2 > 32767), it widens both operands to int16 and uses
// VPMADDWD, exact in int32. The quantize and dequantize kernels are AVX2
// on both assembly paths.
//
// # Design
//
// Pack stores B in slivers of 16 rows, k in groups of 4 bytes, the layout
// in which one 32-bit lane holds the four weights VPDPBUSD (or VPMADDUBSW
// and VPMADDWD) sum, padded with zeros to whole groups and to 64 rows; the
// same layout serves every path. MatMul is the BLIS loop nest without B
// packing: k in blocks of up to 1024, rows in blocks of 120, then a tile
// kernel that keeps an mr×nr block of C in registers: VNNI 12×32 (24 zmm
// sums), 24×16 for narrow outputs, 4×64 for up to 4 rows and 1×64 with
// three sets of sums for one row (batch 1); AVX2 4×16 (7-bit) and 6×8
// (8-bit). A is read in place, four bytes per k group: a row's bytes past
// k meet B's zero padding, and only tiles that would read past the end of
// A, or rows past m, are copied first. AVX-512 tiles mask their stores at
// ragged edges; AVX2 ones compute into scratch. Integer sums are exact, so
// blocking and tile choice never change results.
//
// # Speed
//
// See docs/PERFORMANCE.md ("Integer and sparse kernels") and
// BenchmarkMatMul, BenchmarkLayer and BenchmarkTiles.
//
// # Regenerating the assembly
//
//	go generate ./internal/qgemm
//
// runs asm/gen.go (avo), which writes kernel_amd64.s and
// kernel_stubs_amd64.go.
package qgemm
