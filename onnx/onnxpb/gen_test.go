package onnxpb_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/shrink-ml/shrink/onnx/onnxpb"
)

// TestGeneratedInSync compiles onnx.proto with protoc and compares its
// descriptor with the one compiled into onnx.pb.go: an edit to either alone
// fails here (run go generate ./onnx/onnxpb).
func TestGeneratedInSync(t *testing.T) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Skip("protoc not installed (apt-get install protobuf-compiler): skipping the generated-code check")
	}
	out := filepath.Join(t.TempDir(), "onnx.desc")
	cmd := exec.Command(protoc, "--descriptor_set_out="+out, "-I.", "onnx.proto")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc onnx.proto: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.File) != 1 {
		t.Fatalf("protoc wrote %d files, want 1", len(set.File))
	}
	want := set.File[0]
	got := protodesc.ToFileDescriptorProto(onnxpb.File_onnx_proto)
	if !proto.Equal(got, want) {
		t.Errorf("onnx.pb.go is not generated from onnx.proto: run go generate ./onnx/onnxpb")
	}
}

func TestSchemaHasInt4(t *testing.T) {
	// The reason for this copy of the schema over Debian's (IR 8): 4-bit types.
	if onnxpb.Version_IR_VERSION < 10 || onnxpb.TensorProto_UINT4 != 21 || onnxpb.TensorProto_INT4 != 22 {
		t.Errorf("IR_VERSION %d, UINT4 %d, INT4 %d: want IR >= 10 with UINT4 = 21 and INT4 = 22",
			onnxpb.Version_IR_VERSION, onnxpb.TensorProto_UINT4, onnxpb.TensorProto_INT4)
	}
}
