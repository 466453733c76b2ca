package onnx

import (
	"fmt"
	"math"
	"os"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/shrink-ml/shrink/onnx/onnxpb"
)

// opsetIR pairs each default-domain opset with the IR version of the ONNX
// release that introduced it: a model importing opset o needs at least the IR
// of the last entry whose opset is <= o.
var opsetIR = []struct{ opset, ir int64 }{
	{1, 3}, {9, 4}, {10, 5}, {11, 6}, {12, 7}, {15, 8}, {19, 9}, {21, 10}, {23, 11}, {24, 12}, {25, 13},
}

// MinIRVersion is the lowest IR version a model importing opset of the
// default domain may declare, or an error for an opset newer than this
// package's schema.
func MinIRVersion(opset int64) (int64, error) {
	last := opsetIR[len(opsetIR)-1]
	if opset > last.opset {
		return 0, fmt.Errorf("opset %d is newer than this package knows (ONNX 1.20: opset %d, IR %d): set Model.IRVersion", opset, last.opset, last.ir)
	}
	ir := opsetIR[0].ir
	for _, e := range opsetIR {
		if e.opset <= opset {
			ir = e.ir
		}
	}
	return ir, nil
}

// irInt4 is the IR version that added INT4 and UINT4 (ONNX 1.16).
const irInt4 = 10

// Proto validates the model and converts it to its protobuf message.
func (m *Model) Proto() (*onnxpb.ModelProto, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	e := &encoder{}
	p := &onnxpb.ModelProto{
		ProducerName:    str(m.ProducerName),
		ProducerVersion: str(m.ProducerVersion),
		Domain:          str(m.Domain),
		DocString:       str(m.DocString),
		Graph:           e.graph(m.Graph),
	}
	if m.ModelVersion != 0 {
		p.ModelVersion = &m.ModelVersion
	}
	for _, o := range m.Opsets {
		p.OpsetImport = append(p.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String(o.Domain), Version: proto.Int64(o.Version)})
	}
	keys := make([]string, 0, len(m.Metadata))
	for k := range m.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.MetadataProps = append(p.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(m.Metadata[k])})
	}
	ir := m.IRVersion
	if ir == 0 {
		var err error
		if ir, err = MinIRVersion(m.Opset("")); err != nil {
			return nil, err
		}
		if e.int4 && ir < irInt4 {
			ir = irInt4
		}
	}
	p.IrVersion = &ir
	return p, nil
}

// Marshal validates the model and encodes it as an .onnx file's bytes.
// The encoding is deterministic: the same model gives the same bytes.
func (m *Model) Marshal() ([]byte, error) {
	p, err := m.Proto()
	if err != nil {
		return nil, err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode model: %w", err)
	}
	if len(b) > math.MaxInt32 {
		return nil, fmt.Errorf("model is %d bytes, over protobuf's 2 GiB limit (external data is not supported)", len(b))
	}
	return b, nil
}

// WriteFile writes the model to path.
func (m *Model) WriteFile(path string) error {
	b, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, b, 0o644)
}

// encoder converts a validated model, noting what its IR version must cover.
type encoder struct {
	int4 bool
}

func (e *encoder) graph(g *Graph) *onnxpb.GraphProto {
	p := &onnxpb.GraphProto{Name: str(g.Name), DocString: str(g.DocString)}
	for _, v := range g.Inputs {
		p.Input = append(p.Input, e.valueInfo(v))
	}
	for _, v := range g.Outputs {
		p.Output = append(p.Output, e.valueInfo(v))
	}
	for _, v := range g.ValueInfos {
		p.ValueInfo = append(p.ValueInfo, e.valueInfo(v))
	}
	for _, t := range g.Initializers {
		p.Initializer = append(p.Initializer, e.tensor(t))
	}
	for _, n := range g.Nodes {
		np := &onnxpb.NodeProto{
			Name: str(n.Name), OpType: proto.String(n.OpType), Domain: str(n.Domain),
			Input: n.Inputs, Output: n.Outputs,
		}
		for _, a := range n.Attrs {
			np.Attribute = append(np.Attribute, e.attr(a))
		}
		p.Node = append(p.Node, np)
	}
	return p
}

func (e *encoder) tensor(t *Tensor) *onnxpb.TensorProto {
	e.note(t.Type)
	return t.toProto()
}

func (e *encoder) note(dt DataType) {
	if dt == TypeInt4 || dt == TypeUint4 {
		e.int4 = true
	}
}

func (e *encoder) valueInfo(v ValueInfo) *onnxpb.ValueInfoProto {
	p := &onnxpb.ValueInfoProto{Name: proto.String(v.Name)}
	if v.Type == TypeUndefined && v.Shape == nil {
		return p
	}
	e.note(v.Type)
	tt := &onnxpb.TypeProto_Tensor{}
	if v.Type != TypeUndefined {
		tt.ElemType = proto.Int32(int32(v.Type))
	}
	if v.Shape != nil {
		tt.Shape = &onnxpb.TensorShapeProto{Dim: make([]*onnxpb.TensorShapeProto_Dimension, len(v.Shape))}
		for i, d := range v.Shape {
			dp := &onnxpb.TensorShapeProto_Dimension{}
			switch {
			case d.Param != "":
				dp.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}
			case d.Value >= 0:
				dp.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.Value}
			}
			tt.Shape.Dim[i] = dp
		}
	}
	p.Type = &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}}
	return p
}

func (e *encoder) attr(a Attribute) *onnxpb.AttributeProto {
	p := &onnxpb.AttributeProto{Name: proto.String(a.Name), Type: a.Type.Enum()}
	switch a.Type {
	case AttrTypeFloat:
		p.F = proto.Float32(a.Float)
	case AttrTypeInt:
		p.I = proto.Int64(a.Int)
	case AttrTypeString:
		p.S = []byte(a.String)
	case AttrTypeTensor:
		p.T = e.tensor(a.Tensor)
	case AttrTypeGraph:
		p.G = e.graph(a.Graph)
	case AttrTypeFloats:
		p.Floats = a.Floats
	case AttrTypeInts:
		p.Ints = a.Ints
	case AttrTypeStrings:
		for _, s := range a.Strings {
			p.Strings = append(p.Strings, []byte(s))
		}
	}
	return p
}

// str is an optional string field, left out when empty.
func str(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
