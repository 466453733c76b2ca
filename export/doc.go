// Package export writes a model in the two forms `shrink export` offers and
// reads them back: dense (plain F32 safetensors, quantized weights as the
// values their integers stand for, factored layers kept as their factors) and
// compressed (package compress: the smallest lossless form, the deployed size).
// It also measures the compressed size and ratio the runner reports per stage.
//
//	f, _ := checkpoint.ReadFile("runs/x/prune/model.safetensors")
//	n, err := compress.WriteFile("model.shkz", f)   // n: the deployed size
//	m, err := export.LoadModel("model.shkz", nil)     // the identical model
package export
