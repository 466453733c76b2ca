package onnx_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shrink-ml/shrink/onnx"
	"github.com/shrink-ml/shrink/onnx/onnxpb"
)

// allTypes is a model with an initializer of every supported type, each
// attribute type, and a subgraph.
func allTypes() *onnx.Model {
	m := onnx.NewModel(21) // INT4 needs opset 21
	m.ProducerVersion = "test"
	m.DocString = "every type"
	m.Metadata["b"] = "2"
	m.Metadata["a"] = "1"
	g := m.Graph
	g.AddInput("x", onnx.TypeFloat, onnx.Batch("N", 2))
	g.AddInput("cond", onnx.TypeBool, []onnx.Dim{}) // a scalar
	for _, t := range []*onnx.Tensor{
		onnx.FloatTensor("f32", []int64{2}, []float32{1.5, -2}),
		onnx.DoubleTensor("f64", []int64{1}, []float64{3.25}),
		onnx.Int8Tensor("i8", []int64{3}, []int8{-128, 0, 127}),
		onnx.Uint8Tensor("u8", []int64{2}, []uint8{0, 255}),
		onnx.Int32Tensor("i32", []int64{1, 2}, []int32{-1 << 31, 1<<31 - 1}),
		onnx.Int64Tensor("i64", nil, []int64{-1 << 63}),
		onnx.BoolTensor("b", []int64{3}, []bool{true, false, true}),
		onnx.Int4Tensor("i4", []int64{3}, []int8{-8, 7, -1}), // odd: the last byte is half used
		onnx.Uint4Tensor("u4", []int64{2, 2}, []uint8{0, 15, 9, 1}),
		onnx.FloatTensor("empty", []int64{0, 3}, nil),
	} {
		g.AddInitializer(t)
	}
	then := &onnx.Graph{Name: "then"}
	then.AddNode("Identity", []string{"x"}, []string{"t_out"}) // x from the enclosing graph
	then.AddOutput("t_out", onnx.TypeFloat, nil)
	els := &onnx.Graph{Name: "else"}
	els.AddNode("Neg", []string{"x"}, []string{"e_out"})
	els.AddOutput("e_out", onnx.TypeFloat, nil)
	g.AddNode("If", []string{"cond"}, []string{"y"}, onnx.AttrGraph("then_branch", then), onnx.AttrGraph("else_branch", els))
	g.Nodes = append(g.Nodes, onnx.Node{
		Name: "attrs", OpType: "Custom", Domain: "shrink.test", Inputs: []string{"y", "", "f32"}, Outputs: []string{"z", ""},
		Attrs: []onnx.Attribute{
			onnx.AttrFloat("f", 0.5), onnx.AttrInt("i", -3), onnx.AttrString("s", "text"),
			onnx.AttrFloats("fs", 1, 2), onnx.AttrInts("is", 4, 5, 6), onnx.AttrStrings("ss", "a", ""),
			onnx.AttrTensor("t", onnx.Int64Tensor("", []int64{2}, []int64{7, 8})),
		},
	})
	m.Opsets = append(m.Opsets, onnx.Opset{Domain: "shrink.test", Version: 1})
	g.ValueInfos = []onnx.ValueInfo{{Name: "y", Type: onnx.TypeFloat, Shape: []onnx.Dim{{Param: "N"}, onnx.Unknown}}, {Name: "z"}}
	g.AddOutput("z", onnx.TypeFloat, onnx.Batch("N", 2))
	return m
}

func TestRoundTrip(t *testing.T) {
	m := allTypes()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := onnx.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := *m
	want.IRVersion = 10 // chosen by Marshal: opset 21
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("parsed back:\n%+v\nwant\n%+v", got, &want)
		for i := range got.Graph.Initializers {
			if !reflect.DeepEqual(got.Graph.Initializers[i], want.Graph.Initializers[i]) {
				t.Errorf("initializer %d: %+v, want %+v", i, got.Graph.Initializers[i], want.Graph.Initializers[i])
			}
		}
	}
	b2, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Error("marshalling the parsed model gives other bytes")
	}
}

// TestWireFormat looks at the protobuf itself: how tensors, shapes and
// metadata are written.
func TestWireFormat(t *testing.T) {
	b, err := allTypes().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var p onnxpb.ModelProto
	if err := proto.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	raw := map[string][]byte{}
	for _, t := range p.Graph.Initializer {
		raw[t.GetName()] = t.RawData
	}
	for name, want := range map[string][]byte{
		"f32": {0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0}, // little-endian IEEE 754
		"i4":  {0x78, 0x0f},                      // -8 = 0x8 in the low nibble, 7 in the high; -1 = 0xf
		"u4":  {0xf0, 0x19},
		"b":   {1, 0, 1},
	} {
		if !bytes.Equal(raw[name], want) {
			t.Errorf("raw_data of %s = % x, want % x", name, raw[name], want)
		}
	}
	if len(p.MetadataProps) != 2 || p.MetadataProps[0].GetKey() != "a" || p.MetadataProps[1].GetKey() != "b" {
		t.Errorf("metadata_props %v, want a then b", p.MetadataProps)
	}
	dims := p.Graph.Input[0].GetType().GetTensorType().GetShape().GetDim()
	if len(dims) != 2 || dims[0].GetDimParam() != "N" || dims[1].GetDimValue() != 2 {
		t.Errorf("input shape %v, want [N, 2]", dims)
	}
	if s := p.Graph.Input[1].GetType().GetTensorType().GetShape(); s == nil || len(s.Dim) != 0 {
		t.Errorf("scalar input shape %v, want present and empty", s)
	}
	if p.GetIrVersion() != 10 || p.GetProducerName() != "shrink" {
		t.Errorf("ir_version %d, producer %q", p.GetIrVersion(), p.GetProducerName())
	}
}

func TestIRVersion(t *testing.T) {
	for _, tt := range []struct {
		opset, ir int64
		int4      bool
	}{
		{7, 3, false}, {11, 6, false}, {13, 7, false}, {14, 7, false}, {17, 8, false},
		{19, 9, false}, {21, 10, false}, {22, 10, false}, {25, 13, false},
		{13, 10, true}, // INT4 data raises it
	} {
		m := onnx.NewModel(tt.opset)
		m.Graph.AddInput("x", onnx.TypeFloat, onnx.Shape(1))
		m.Graph.AddOutput("x", onnx.TypeFloat, onnx.Shape(1))
		if tt.int4 {
			m.Graph.AddInitializer(onnx.Int4Tensor("w", []int64{1}, []int8{1}))
		}
		p, err := m.Proto()
		if err != nil {
			t.Fatal(err)
		}
		if p.GetIrVersion() != tt.ir {
			t.Errorf("opset %d (int4 %v): IR %d, want %d", tt.opset, tt.int4, p.GetIrVersion(), tt.ir)
		}
	}
	m := onnx.NewModel(26)
	m.Graph.AddInput("x", onnx.TypeFloat, onnx.Shape(1))
	if _, err := m.Marshal(); err == nil || !strings.Contains(err.Error(), "set Model.IRVersion") {
		t.Errorf("opset 26: %v", err)
	}
	m.IRVersion = 14
	if p, err := m.Proto(); err != nil || p.GetIrVersion() != 14 {
		t.Errorf("an explicit IR version: %v, %v", p.GetIrVersion(), err)
	}
}

func TestValidateErrors(t *testing.T) {
	base := func() *onnx.Model {
		m := onnx.NewModel(13)
		g := m.Graph
		g.AddInput("x", onnx.TypeFloat, onnx.Batch("N", 2))
		g.AddInitializer(onnx.FloatTensor("w", []int64{2, 2}, []float32{1, 2, 3, 4}))
		g.AddNode("MatMul", []string{"x", "w"}, []string{"y"})
		g.AddOutput("y", onnx.TypeFloat, onnx.Batch("N", 2))
		return m
	}
	if _, err := base().Marshal(); err != nil {
		t.Fatalf("the base model: %v", err)
	}
	for _, tt := range []struct {
		name   string
		breaks func(m *onnx.Model)
		want   string
	}{
		{"no graph", func(m *onnx.Model) { m.Graph = nil }, "no graph"},
		{"no default opset", func(m *onnx.Model) { m.Opsets = []onnx.Opset{{Domain: "x", Version: 1}} }, `default domain ""`},
		{"opset twice", func(m *onnx.Model) { m.Opsets = append(m.Opsets, onnx.Opset{Version: 14}) }, `opset domain "" imported twice`},
		{"short data", func(m *onnx.Model) { m.Graph.Initializers[0].Float32 = []float32{1} }, `tensor "w": dims [2 2] hold 4 elements, the data has 1`},
		{"wrong slice", func(m *onnx.Model) { m.Graph.Initializers[0].Int64 = []int64{1} }, `tensor "w": a FLOAT tensor with data in a slice of another type`},
		{"unsupported type", func(m *onnx.Model) { m.Graph.Initializers[0].Type = onnxpb.TensorProto_FLOAT16 }, "data type FLOAT16 is not supported"},
		{"int4 range", func(m *onnx.Model) {
			m.Graph.AddInitializer(onnx.Int4Tensor("q", []int64{2}, []int8{1, 8}))
		}, `INT4 element 1 is 8`},
		{"undefined input", func(m *onnx.Model) { m.Graph.Nodes[0].Inputs[1] = "v" }, `node 0 "MatMul_0" (MatMul): input "v" is not defined before this node`},
		{"use before def", func(m *onnx.Model) {
			m.Graph.Nodes = append([]onnx.Node{{OpType: "Relu", Inputs: []string{"y"}, Outputs: []string{"r"}}}, m.Graph.Nodes...)
		}, `input "y" is not defined before this node`},
		{"output twice", func(m *onnx.Model) { m.Graph.AddNode("Relu", []string{"x"}, []string{"y"}) }, `output "y": the name is already defined`},
		{"initializer twice", func(m *onnx.Model) { m.Graph.AddInitializer(onnx.FloatTensor("w", nil, []float32{1})) }, `initializer "w": the name is already defined`},
		{"missing output", func(m *onnx.Model) { m.Graph.Outputs[0].Name = "nope" }, `output "nope" is not computed`},
		{"untyped input", func(m *onnx.Model) { m.Graph.Inputs[0].Type = onnx.TypeUndefined }, `input "x" has no element type`},
		{"dim both", func(m *onnx.Model) { m.Graph.Inputs[0].Shape[0].Value = 3 }, `dimension 0 is both 3 and "N"`},
		{"attr twice", func(m *onnx.Model) {
			m.Graph.Nodes[0].Attrs = []onnx.Attribute{onnx.AttrInt("a", 1), onnx.AttrInt("a", 2)}
		}, `attribute "a" given twice`},
		{"bad subgraph", func(m *onnx.Model) {
			sub := &onnx.Graph{Name: "body"}
			sub.AddNode("Relu", []string{"nowhere"}, []string{"o"})
			m.Graph.Nodes[0].Attrs = []onnx.Attribute{onnx.AttrGraph("g", sub)}
		}, `attribute "g": graph "body": node 0 "Relu_0" (Relu): input "nowhere"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.breaks(m)
			_, err := m.Marshal()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// model wraps initializers in the smallest valid ModelProto.
func model(inits ...*onnxpb.TensorProto) []byte {
	p := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(7),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph:       &onnxpb.GraphProto{Name: proto.String("g"), Initializer: inits},
	}
	b, err := proto.Marshal(p)
	if err != nil {
		panic(err)
	}
	return b
}

func dt(d onnxpb.TensorProto_DataType) *int32 { return proto.Int32(int32(d)) }

// TestTypedFields reads tensors as other writers store them: in float_data,
// int32_data, int64_data and double_data rather than raw_data.
func TestTypedFields(t *testing.T) {
	b := model(
		&onnxpb.TensorProto{Name: proto.String("f"), DataType: dt(onnxpb.TensorProto_FLOAT), Dims: []int64{2}, FloatData: []float32{1, -1}},
		&onnxpb.TensorProto{Name: proto.String("d"), DataType: dt(onnxpb.TensorProto_DOUBLE), Dims: []int64{1}, DoubleData: []float64{0.5}},
		&onnxpb.TensorProto{Name: proto.String("i8"), DataType: dt(onnxpb.TensorProto_INT8), Dims: []int64{2}, Int32Data: []int32{-128, 127}},
		&onnxpb.TensorProto{Name: proto.String("u8"), DataType: dt(onnxpb.TensorProto_UINT8), Dims: []int64{1}, Int32Data: []int32{200}},
		&onnxpb.TensorProto{Name: proto.String("i32"), DataType: dt(onnxpb.TensorProto_INT32), Dims: []int64{1}, Int32Data: []int32{-5}},
		&onnxpb.TensorProto{Name: proto.String("i64"), DataType: dt(onnxpb.TensorProto_INT64), Dims: []int64{2}, Int64Data: []int64{1, -1}},
		&onnxpb.TensorProto{Name: proto.String("bool"), DataType: dt(onnxpb.TensorProto_BOOL), Dims: []int64{2}, Int32Data: []int32{1, 0}},
		&onnxpb.TensorProto{Name: proto.String("i4"), DataType: dt(onnxpb.TensorProto_INT4), Dims: []int64{3}, Int32Data: []int32{0x78, 0x0f}},
	)
	m, err := onnx.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []*onnx.Tensor{
		onnx.FloatTensor("f", []int64{2}, []float32{1, -1}),
		onnx.DoubleTensor("d", []int64{1}, []float64{0.5}),
		onnx.Int8Tensor("i8", []int64{2}, []int8{-128, 127}),
		onnx.Uint8Tensor("u8", []int64{1}, []uint8{200}),
		onnx.Int32Tensor("i32", []int64{1}, []int32{-5}),
		onnx.Int64Tensor("i64", []int64{2}, []int64{1, -1}),
		onnx.BoolTensor("bool", []int64{2}, []bool{true, false}),
		onnx.Int4Tensor("i4", []int64{3}, []int8{-8, 7, -1}),
	}
	for i, w := range want {
		if g := m.Graph.Initializers[i]; !reflect.DeepEqual(g, w) {
			t.Errorf("%s: got %+v, want %+v", w.Name, g, w)
		}
		if g := m.Graph.Initializer(w.Name); g != m.Graph.Initializers[i] {
			t.Errorf("Initializer(%q) = %v", w.Name, g)
		}
	}
}

func TestParseErrors(t *testing.T) {
	f32 := dt(onnxpb.TensorProto_FLOAT)
	for _, tt := range []struct {
		name string
		file []byte
		want string
	}{
		{"not protobuf", []byte("\xff\xff\xff"), "not an ONNX model"},
		{"external data", model(&onnxpb.TensorProto{
			Name: proto.String("fc.weight"), DataType: f32, Dims: []int64{2},
			DataLocation: onnxpb.TensorProto_EXTERNAL.Enum(),
			ExternalData: []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String("weights.bin")}},
		}), `tensor "fc.weight": its data is in an external file (location "weights.bin"), which shrink does not read: save the model as one file`},
		{"raw size", model(&onnxpb.TensorProto{Name: proto.String("w"), DataType: f32, Dims: []int64{2}, RawData: make([]byte, 7)}),
			`tensor "w": 2 FLOAT elements take 8 bytes of raw_data, it has 7`},
		{"typed count", model(&onnxpb.TensorProto{Name: proto.String("w"), DataType: f32, Dims: []int64{3}, FloatData: []float32{1}}),
			`tensor "w": 3 FLOAT elements need 3 values in float_data, it has 1`},
		{"wrong field", model(&onnxpb.TensorProto{Name: proto.String("w"), DataType: f32, Dims: []int64{1}, Int64Data: []int64{1}}),
			`a FLOAT tensor with int64_data (want float_data or raw_data)`},
		{"both", model(&onnxpb.TensorProto{Name: proto.String("w"), DataType: f32, Dims: []int64{1}, FloatData: []float32{1}, RawData: make([]byte, 4)}),
			`tensor "w": both raw_data and float_data`},
		{"int8 range", model(&onnxpb.TensorProto{Name: proto.String("q"), DataType: dt(onnxpb.TensorProto_INT8), Dims: []int64{1}, Int32Data: []int32{128}}),
			`int32_data[0] = 128 does not fit a INT8`},
		{"huge dims", model(&onnxpb.TensorProto{Name: proto.String("w"), DataType: f32, Dims: []int64{1 << 40, 1 << 40}}),
			`dims [1099511627776 1099511627776] are negative or too large`},
		{"float16", model(&onnxpb.TensorProto{Name: proto.String("h"), DataType: dt(onnxpb.TensorProto_FLOAT16), Dims: []int64{1}, RawData: make([]byte, 2)}),
			`tensor "h": data type FLOAT16 is not supported`},
		{"segment", model(&onnxpb.TensorProto{Name: proto.String("w"), DataType: f32, Segment: &onnxpb.TensorProto_Segment{}}), "segmented"},
		// CI's FuzzParse: a file without ir_version and an opset newer than
		// this package knows parsed, and then could not be written back.
		{"no ir_version", func() []byte {
			b, err := proto.Marshal(&onnxpb.ModelProto{
				OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(48)}},
				Graph:       &onnxpb.GraphProto{Name: proto.String("g")},
			})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}(), "no ir_version"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := onnx.Parse(tt.file)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestReadFileNamesThePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.onnx")
	if err := os.WriteFile(path, []byte("\xff\xff"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := onnx.ReadFile(path); err == nil || !strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("got %v, want an error starting with the path", err)
	}
}

// FuzzParse checks that Parse never panics, and that whatever it accepts
// marshals, parses back to the same model and marshals to the same bytes.
func FuzzParse(f *testing.F) {
	b, err := allTypes().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	fc1, fc2 := mlp()
	if b, err = mlpModel(fc1, fc2).Marshal(); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	files, _ := filepath.Glob("testdata/torch/*.onnx")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := onnx.Parse(b)
		if err != nil {
			return
		}
		b1, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed a model Marshal refuses: %v", err)
		}
		m2, err := onnx.Parse(b1)
		if err != nil {
			t.Fatalf("cannot parse what Marshal wrote: %v", err)
		}
		b2, err := m2.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatal("a second round trip changed the bytes")
		}
	})
}
