package onnx

import (
	"strconv"

	"github.com/shrink-ml/shrink/onnx/onnxpb"
)

// Model is an ONNX model as plain Go values: what Marshal writes and Parse
// returns.
type Model struct {
	// IRVersion is the ONNX IR version the file declares. Zero makes
	// Marshal choose the lowest one that the default-domain opset and the
	// data types need, so the file loads in as many runtimes as it can (opset
	// 13 gives IR 7, which onnx 1.12's checker and every onnxruntime since
	// 1.8 read).
	IRVersion int64
	// Opsets are the operator sets imported, one per domain; "" is the
	// default domain (ai.onnx).
	Opsets          []Opset
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	DocString       string
	// Metadata are the metadata_props, written in key order.
	Metadata map[string]string
	Graph    *Graph
}

// Opset is one opset_import entry.
type Opset struct {
	Domain  string // "" for ai.onnx
	Version int64
}

// NewModel starts a model importing the default domain at opset, produced
// by shrink, with an empty graph named "main".
func NewModel(opset int64) *Model {
	return &Model{
		Opsets:       []Opset{{Version: opset}},
		ProducerName: "shrink",
		Metadata:     map[string]string{},
		Graph:        &Graph{Name: "main"},
	}
}

// Opset is the version the model imports for domain, or 0.
func (m *Model) Opset(domain string) int64 {
	for _, o := range m.Opsets {
		if o.Domain == domain {
			return o.Version
		}
	}
	return 0
}

// Graph is a computation graph: nodes in topological order over named
// values, which are graph inputs, initializers or node outputs.
type Graph struct {
	Name         string
	DocString    string
	Inputs       []ValueInfo
	Outputs      []ValueInfo
	ValueInfos   []ValueInfo // types of intermediate values, when known
	Nodes        []Node
	Initializers []*Tensor
}

// AddInput declares a graph input of a tensor type; see Shape and Batch.
func (g *Graph) AddInput(name string, dtype DataType, shape []Dim) {
	g.Inputs = append(g.Inputs, ValueInfo{Name: name, Type: dtype, Shape: shape})
}

// AddOutput declares a graph output of a tensor type.
func (g *Graph) AddOutput(name string, dtype DataType, shape []Dim) {
	g.Outputs = append(g.Outputs, ValueInfo{Name: name, Type: dtype, Shape: shape})
}

// AddInitializer adds a constant tensor, named by t.Name.
func (g *Graph) AddInitializer(t *Tensor) { g.Initializers = append(g.Initializers, t) }

// AddNode appends a node of the default domain. Its name is the op type and
// its index ("Gemm_2"), which is what onnxruntime's errors will show.
func (g *Graph) AddNode(op string, inputs, outputs []string, attrs ...Attribute) {
	g.Nodes = append(g.Nodes, Node{
		Name: op + "_" + strconv.Itoa(len(g.Nodes)), OpType: op, Inputs: inputs, Outputs: outputs, Attrs: attrs,
	})
}

// Initializer finds an initializer by name, or nil.
func (g *Graph) Initializer(name string) *Tensor {
	for _, t := range g.Initializers {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// OpTypes lists the nodes' op types in order.
func (g *Graph) OpTypes() []string {
	ops := make([]string, len(g.Nodes))
	for i, n := range g.Nodes {
		ops[i] = n.OpType
	}
	return ops
}

// Node is one operator application.
type Node struct {
	Name   string
	OpType string
	Domain string // "" for ai.onnx
	// Inputs may hold "" for an optional input left out.
	Inputs  []string
	Outputs []string
	Attrs   []Attribute
}

// Attr finds an attribute by name.
func (n *Node) Attr(name string) (Attribute, bool) {
	for _, a := range n.Attrs {
		if a.Name == name {
			return a, true
		}
	}
	return Attribute{}, false
}

// ValueInfo is the name and tensor type of a value.
type ValueInfo struct {
	Name string
	Type DataType // Undefined when not known
	// Shape is nil when even the rank is unknown, and empty (not nil) for
	// a scalar.
	Shape []Dim
}

// Dim is one dimension of a shape: a fixed size (Value >= 0), a named
// symbolic size such as the batch dimension (Param), or neither (Unknown).
type Dim struct {
	Value int64 // 0 when Param is set; -1 with Param "" when unknown
	Param string
}

// Unknown is a dimension of unknown size.
var Unknown = Dim{Value: -1}

// Shape is a fixed shape.
func Shape(dims ...int64) []Dim {
	s := make([]Dim, len(dims))
	for i, d := range dims {
		s[i] = Dim{Value: d}
	}
	return s
}

// Batch is a shape whose leading dimension is the symbolic batch size
// named param ("N") and whose other dimensions are fixed.
func Batch(param string, dims ...int64) []Dim {
	return append([]Dim{{Param: param}}, Shape(dims...)...)
}

// AttrType is the type of an attribute's value.
type AttrType = onnxpb.AttributeProto_AttributeType

// The attribute types this package reads and writes.
const (
	AttrTypeFloat   = onnxpb.AttributeProto_FLOAT
	AttrTypeInt     = onnxpb.AttributeProto_INT
	AttrTypeString  = onnxpb.AttributeProto_STRING
	AttrTypeTensor  = onnxpb.AttributeProto_TENSOR
	AttrTypeGraph   = onnxpb.AttributeProto_GRAPH
	AttrTypeFloats  = onnxpb.AttributeProto_FLOATS
	AttrTypeInts    = onnxpb.AttributeProto_INTS
	AttrTypeStrings = onnxpb.AttributeProto_STRINGS
)

// Attribute is a named attribute of a node; the field that Type names holds
// its value.
type Attribute struct {
	Name    string
	Type    AttrType
	Float   float32
	Int     int64
	String  string
	Tensor  *Tensor
	Graph   *Graph
	Floats  []float32
	Ints    []int64
	Strings []string
}

// AttrInt is an INT attribute.
func AttrInt(name string, v int64) Attribute {
	return Attribute{Name: name, Type: AttrTypeInt, Int: v}
}

// AttrFloat is a FLOAT attribute.
func AttrFloat(name string, v float32) Attribute {
	return Attribute{Name: name, Type: AttrTypeFloat, Float: v}
}

// AttrString is a STRING attribute.
func AttrString(name, v string) Attribute {
	return Attribute{Name: name, Type: AttrTypeString, String: v}
}

// AttrInts is an INTS attribute.
func AttrInts(name string, v ...int64) Attribute {
	return Attribute{Name: name, Type: AttrTypeInts, Ints: v}
}

// AttrFloats is a FLOATS attribute.
func AttrFloats(name string, v ...float32) Attribute {
	return Attribute{Name: name, Type: AttrTypeFloats, Floats: v}
}

// AttrStrings is a STRINGS attribute.
func AttrStrings(name string, v ...string) Attribute {
	return Attribute{Name: name, Type: AttrTypeStrings, Strings: v}
}

// AttrTensor is a TENSOR attribute, such as Constant's value.
func AttrTensor(name string, t *Tensor) Attribute {
	return Attribute{Name: name, Type: AttrTypeTensor, Tensor: t}
}

// AttrGraph is a GRAPH attribute, such as If's branches.
func AttrGraph(name string, g *Graph) Attribute {
	return Attribute{Name: name, Type: AttrTypeGraph, Graph: g}
}
