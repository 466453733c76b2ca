package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/shrink-ml/shrink/onnx/onnxpb"
)

// compile runs protoc on a .proto text and returns its descriptor.
func compile(t *testing.T, text []byte) *descriptorpb.FileDescriptorProto {
	t.Helper()
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Skip("protoc not installed (apt-get install protobuf-compiler): skipping")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "onnx.proto"), text, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "onnx.desc")
	if b, err := exec.Command(protoc, "--descriptor_set_out="+out, "-I"+dir, filepath.Join(dir, "onnx.proto")).CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil || len(set.File) != 1 {
		t.Fatalf("protoc's descriptor set: %v, %d files", err, len(set.File))
	}
	return set.File[0]
}

// TestReprint prints the schema compiled into onnxpb and compiles the text
// again: the printer loses nothing protoc would read.
func TestReprint(t *testing.T) {
	want := protodesc.ToFileDescriptorProto(onnxpb.File_onnx_proto)
	for _, docs := range []map[string]string{nil, {"onnx.TensorProto": "a comment\n\nover two paragraphs", "onnx.TensorProto.DataType.INT4": "*/ closes nothing in // comments"}} {
		text, err := printProto(want, docs, "header")
		if err != nil {
			t.Fatal(err)
		}
		if got := compile(t, text); !proto.Equal(got, want) {
			t.Errorf("the reprinted schema differs from onnxpb's:\n%s", text)
		}
	}
}

// TestCommittedProto rebuilds onnx.proto from the installed onnx-buf and
// compares it with the committed file, when onnx-buf is installed.
func TestCommittedProto(t *testing.T) {
	if _, err := os.Stat("node_modules/onnx-buf/dist/onnx_pb.js"); err != nil {
		t.Skip("onnx-buf not installed (cd tools/onnxproto && npm ci --ignore-scripts): skipping the check of onnx/onnxpb/onnx.proto against it")
	}
	out := filepath.Join(t.TempDir(), "onnx.proto")
	if err := run(".", out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../../onnx/onnxpb/onnx.proto")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, committed) {
		t.Errorf("onnx/onnxpb/onnx.proto is not what onnx-buf gives: run go run ./tools/onnxproto && go generate ./onnx/onnxpb")
	}
	js, err := os.ReadFile("node_modules/onnx-buf/dist/onnx_pb.js")
	if err != nil {
		t.Fatal(err)
	}
	upstream, err := descriptor(js)
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := compile(t, got)
	stripJSONNames(rebuilt)
	if !proto.Equal(rebuilt, upstream) {
		t.Errorf("protoc reads the rebuilt onnx.proto into a descriptor other than onnx-buf's")
	}
}

func TestComments(t *testing.T) {
	dts := []byte(`
/**
 * Describes the file onnx.proto.
 */
/**
 * Tensors
 *
 * A serialized tensor value.
 *
 * @generated from message onnx.TensorProto
 */
export declare type TensorProto = Message<"onnx.TensorProto"> & {
  /**
   * The shape of the tensor.
   *
   * @generated from field: repeated int64 dims = 1;
   */
  dims: bigint[];
  /**
   * @generated from field: repeated float float_data = 4 [packed = true];
   */
  floatData: number[];
};
/**
 * @generated from enum onnx.TensorProto.DataType
 */
export enum TensorProto_DataType {
  /**
   * Basic types.
   *
   * float, see *\/ here
   *
   * @generated from enum value: FLOAT = 1;
   */
  FLOAT = 1,
}
`)
	got, err := comments(dts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"onnx.TensorProto":                "Tensors\n\nA serialized tensor value.",
		"onnx.TensorProto.dims":           "The shape of the tensor.",
		"onnx.TensorProto.DataType.FLOAT": "Basic types.\n\nfloat, see */ here",
	}
	if len(got) != len(want) {
		t.Errorf("got %d comments, want %d: %q", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("comment of %s = %q, want %q", k, got[k], v)
		}
	}
}
