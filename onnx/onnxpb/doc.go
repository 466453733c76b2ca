// Package onnxpb is ONNX's protobuf schema (onnx.proto, ONNX 1.20.0, IR
// version 13) compiled to Go by protoc-gen-go. Use package onnx to build and
// read models; this package is the wire format underneath.
//
// onnx.proto here is rebuilt from the npm package onnx-buf by tools/onnxproto
// (see its header for the exact origin). onnx.pb.go is generated from it with
// protoc 3.21 (/usr/bin/protoc, Debian's protobuf-compiler) and protoc-gen-go,
// a tool dependency in go.mod, so its version is the google.golang.org/protobuf
// the module requires. Regenerate with
//
//	go generate ./onnx/onnxpb
//
// which runs, in this folder,
//
//	protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/shrink-ml/shrink/onnx/onnxpb onnx.proto
//
// The M option gives the file its Go package, because upstream's onnx.proto
// has no go_package option and this copy adds none, so that its descriptor
// stays upstream's. TestGeneratedInSync fails when onnx.pb.go and onnx.proto
// disagree.
package onnxpb

//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/shrink-ml/shrink/onnx/onnxpb onnx.proto"
