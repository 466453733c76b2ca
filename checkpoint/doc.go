// Package checkpoint reads and writes safetensors files
// (https://huggingface.co/docs/safetensors), the checkpoint format of shrink.
//
// A file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON header, then
// the data buffer. The header maps each tensor name to
// {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (offsets relative to the
// data buffer) and may hold a "__metadata__" object of string to string.
//
// Writing is deterministic: the same tensors and metadata give the same bytes (see Encode),
// so files can be compared by their sha256 (WriteFile returns it, Digest computes it).
// The layout is the one Python's safetensors.torch.load_file reads (checked with
// testdata/safetensors/stlite.py, which applies the same rules, and PyTorch; the
// safetensors library itself was not installed where this was written).
//
// Reading is strict. Read rejects, with an error that says what is wrong and matches
// ErrMalformed: a file shorter than 8 bytes; a header length beyond the file or
// MaxHeaderSize; a header that is not UTF-8, not JSON (including lone \u surrogates), not
// an object, or followed by anything but whitespace; duplicate keys anywhere; an entry that
// is not an object with exactly dtype, shape and data_offsets; an unknown dtype; shape dims
// or offsets that are not non-negative integers, or an element count that overflows;
// offsets whose span differs from what the shape needs, that end past the buffer, or that
// leave a gap, overlap or do not cover the whole buffer; metadata values that are not
// strings. The header is checked before the data buffer is allocated: nothing a header
// merely claims is ever allocated, and memory stays linear in the file size.
//
// Example:
//
//	f := &checkpoint.File{Metadata: map[string]string{"stage": "prune"}}
//	f.Set(checkpoint.F32("fc1.weight", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}))
//	f.Set(checkpoint.I8("fc1.weight_q", []int{2, 3}, []int8{-1, 0, 1, 2, 3, 4}))
//	sum, err := checkpoint.WriteFile("model.safetensors", f)
//	...
//	g, err := checkpoint.ReadFile("model.safetensors")
//	...
//	w, _ := g.Get("fc1.weight")
//	vals, err := w.Float32s() // []float32{1, 2, 3, 4, 5, 6}
package checkpoint
