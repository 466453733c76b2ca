// Package onnx builds ONNX models and reads them back, as plain Go values
// over the generated protobuf code in onnx/onnxpb.
//
// Building: a Model holds opset imports, metadata and a Graph; the graph
// takes inputs and outputs (Batch gives a shape with a symbolic batch
// dimension), initializers from Go slices, and nodes with attributes.
// Marshal validates the names and tensors, picks the lowest IR version the
// opset allows, and encodes deterministically:
//
//	m := onnx.NewModel(13)
//	g := m.Graph
//	g.AddInput("input", onnx.TypeFloat, onnx.Batch("N", 4))
//	g.AddInitializer(onnx.FloatTensor("fc.weight", []int64{3, 4}, w))
//	g.AddInitializer(onnx.FloatTensor("fc.bias", []int64{3}, b))
//	g.AddNode("Gemm", []string{"input", "fc.weight", "fc.bias"}, []string{"logits"}, onnx.AttrInt("transB", 1))
//	g.AddOutput("logits", onnx.TypeFloat, onnx.Batch("N", 3))
//	m.Metadata["shrink.recipe"] = "quickstart"
//	err := m.WriteFile("model.onnx")
//
// Reading: ReadFile and Parse decode a file, such as one torch.onnx.export
// wrote, into the same values, with every initializer's data decoded from
// raw_data or the typed fields; tensors stored in external files are refused
// with an error that says how to re-save the model.
//
// The checks here are structural. ONNX's own checker (python3-onnx) and
// onnxruntime (tools/ort) judge operators and shapes; internal/ortest runs
// both from tests.
package onnx
