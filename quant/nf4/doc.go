// Package nf4 is 4-bit NormalFloat quantization bit for bit as bitsandbytes does it, for
// QLoRA's frozen base weights: Quantize, an allocation-free Dequantize for the forward
// pass, and the safetensors tensors bitsandbytes and transformers write for a Linear4bit
// (Tensors, FromTensors). docs/NF4.md describes the format and how it was verified against
// testdata/nf4/make_nf4.py, a numpy re-implementation of bitsandbytes' kernels.
//
// Example:
//
//	q, err := nf4.Quantize(w, []int{300, 784}, nf4.DefaultBlocksize, true)
//	...
//	buf := make([]float32, q.Len())
//	err = q.Dequantize(buf) // every forward pass
//	ts, err := q.Tensors("fc1.weight")
//	...
//	q2, err := nf4.FromTensors(file, "fc1.weight")
package nf4
