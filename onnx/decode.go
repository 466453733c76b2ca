package onnx

import (
	"errors"
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/shrink-ml/shrink/onnx/onnxpb"
)

// ReadFile reads and parses an .onnx file.
func ReadFile(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Parse decodes an .onnx file's bytes into a validated Model, with every
// tensor's data decoded (from raw_data or the typed fields). It refuses
// what shrink cannot represent, saying so: tensors stored in external files,
// sparse tensors, data types other than FLOAT, DOUBLE, INT8, UINT8, INT32,
// INT64, BOOL, INT4 and UINT4, non-tensor values, model-local functions and
// training information.
func Parse(b []byte) (*Model, error) {
	var p onnxpb.ModelProto
	if err := proto.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("not an ONNX model: %w", err)
	}
	// A file must say its IR version (onnx.checker refuses one that does
	// not); Model's zero means "choose one" only for models built in Go.
	if p.GetIrVersion() < 1 {
		return nil, fmt.Errorf("the model has no ir_version (%d), which ONNX requires and its checker refuses: export it again with an ONNX exporter", p.GetIrVersion())
	}
	m, err := FromProto(&p)
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// FromProto converts a ModelProto to a Model without validating it.
func FromProto(p *onnxpb.ModelProto) (*Model, error) {
	if len(p.Functions) > 0 {
		return nil, fmt.Errorf("model defines %d local functions (such as %q), which shrink does not read: export without them (torch.onnx.export without export_modules_as_functions)", len(p.Functions), p.Functions[0].GetName())
	}
	if len(p.TrainingInfo) > 0 {
		return nil, errors.New("model has training_info, which shrink does not read: export the inference graph only")
	}
	if p.Graph == nil {
		return nil, errors.New("model has no graph")
	}
	m := &Model{
		IRVersion:       p.GetIrVersion(),
		ProducerName:    p.GetProducerName(),
		ProducerVersion: p.GetProducerVersion(),
		Domain:          p.GetDomain(),
		ModelVersion:    p.GetModelVersion(),
		DocString:       p.GetDocString(),
		Metadata:        map[string]string{},
	}
	for _, o := range p.OpsetImport {
		m.Opsets = append(m.Opsets, Opset{Domain: o.GetDomain(), Version: o.GetVersion()})
	}
	for _, kv := range p.MetadataProps {
		if _, dup := m.Metadata[kv.GetKey()]; dup {
			return nil, fmt.Errorf("metadata key %q appears twice", kv.GetKey())
		}
		m.Metadata[kv.GetKey()] = kv.GetValue()
	}
	g, err := graphFromProto(p.Graph)
	if err != nil {
		return nil, err
	}
	m.Graph = g
	return m, nil
}

func graphFromProto(p *onnxpb.GraphProto) (*Graph, error) {
	g, err := graphFields(p)
	if err != nil {
		return nil, fmt.Errorf("graph %q: %w", p.GetName(), err)
	}
	return g, nil
}

func graphFields(p *onnxpb.GraphProto) (*Graph, error) {
	if len(p.SparseInitializer) > 0 {
		return nil, fmt.Errorf("sparse initializer %q: sparse tensors are not supported", p.SparseInitializer[0].GetValues().GetName())
	}
	if len(p.QuantizationAnnotation) > 0 {
		return nil, errors.New("quantization_annotation is not supported: express quantization as QuantizeLinear/DequantizeLinear nodes")
	}
	g := &Graph{Name: p.GetName(), DocString: p.GetDocString()}
	var err error
	if g.Inputs, err = valueInfos(p.Input, "input"); err != nil {
		return nil, err
	}
	if g.Outputs, err = valueInfos(p.Output, "output"); err != nil {
		return nil, err
	}
	if g.ValueInfos, err = valueInfos(p.ValueInfo, "value_info"); err != nil {
		return nil, err
	}
	for _, tp := range p.Initializer {
		t, err := tensorFromProto(tp)
		if err != nil {
			return nil, fmt.Errorf("initializer: %w", err)
		}
		g.Initializers = append(g.Initializers, t)
	}
	for i, np := range p.Node {
		n := Node{Name: np.GetName(), OpType: np.GetOpType(), Domain: np.GetDomain(), Inputs: np.Input, Outputs: np.Output}
		for _, ap := range np.Attribute {
			a, err := attrFromProto(ap)
			if err != nil {
				return nil, fmt.Errorf("node %d %q (%s): attribute %q: %w", i, n.Name, n.OpType, ap.GetName(), err)
			}
			n.Attrs = append(n.Attrs, a)
		}
		g.Nodes = append(g.Nodes, n)
	}
	return g, nil
}

func valueInfos(ps []*onnxpb.ValueInfoProto, what string) ([]ValueInfo, error) {
	var out []ValueInfo
	for _, p := range ps {
		v := ValueInfo{Name: p.GetName()}
		if tp := p.GetType(); tp != nil {
			tt, ok := tp.Value.(*onnxpb.TypeProto_TensorType)
			if !ok {
				return nil, fmt.Errorf("%s %q: its type is not a tensor (%T): shrink reads tensor values only", what, v.Name, tp.Value)
			}
			v.Type = DataType(tt.TensorType.GetElemType())
			if s := tt.TensorType.GetShape(); s != nil {
				v.Shape = make([]Dim, len(s.Dim))
				for i, d := range s.Dim {
					switch d.Value.(type) {
					case *onnxpb.TensorShapeProto_Dimension_DimParam:
						v.Shape[i] = Dim{Param: d.GetDimParam()}
					case *onnxpb.TensorShapeProto_Dimension_DimValue:
						if d.GetDimValue() < 0 {
							return nil, fmt.Errorf("%s %q: dimension %d is %d", what, v.Name, i, d.GetDimValue())
						}
						v.Shape[i] = Dim{Value: d.GetDimValue()}
					default:
						v.Shape[i] = Unknown
					}
				}
			}
		}
		out = append(out, v)
	}
	return out, nil
}

func attrFromProto(p *onnxpb.AttributeProto) (Attribute, error) {
	a := Attribute{Name: p.GetName(), Type: p.GetType()}
	if p.GetRefAttrName() != "" {
		return a, fmt.Errorf("refers to the function attribute %q; functions are not supported", p.GetRefAttrName())
	}
	switch a.Type {
	case AttrTypeFloat:
		a.Float = p.GetF()
	case AttrTypeInt:
		a.Int = p.GetI()
	case AttrTypeString:
		a.String = string(p.GetS())
	case AttrTypeFloats:
		a.Floats = p.Floats
	case AttrTypeInts:
		a.Ints = p.Ints
	case AttrTypeStrings:
		for _, s := range p.Strings {
			a.Strings = append(a.Strings, string(s))
		}
	case AttrTypeTensor:
		if p.T == nil {
			return a, errors.New("TENSOR attribute without a tensor")
		}
		t, err := tensorFromProto(p.T)
		if err != nil {
			return a, err
		}
		a.Tensor = t
	case AttrTypeGraph:
		if p.G == nil {
			return a, errors.New("GRAPH attribute without a graph")
		}
		g, err := graphFromProto(p.G)
		if err != nil {
			return a, err
		}
		a.Graph = g
	case onnxpb.AttributeProto_UNDEFINED:
		return a, errors.New("no type (files older than IR 2 are not supported)")
	default:
		return a, fmt.Errorf("type %s is not supported (shrink handles FLOAT, INT, STRING, TENSOR, GRAPH, FLOATS, INTS, STRINGS)", a.Type)
	}
	return a, nil
}
