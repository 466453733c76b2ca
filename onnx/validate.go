package onnx

import (
	"errors"
	"fmt"

	"github.com/shrink-ml/shrink/onnx/onnxpb"
)

// Validate checks what Marshal needs and what a reader can rely on: opsets
// imported once each with the default domain among them; tensors whose data
// fits their type and dims; names that are defined once (graph inputs,
// initializers, node outputs) and nodes that use only names defined before
// them, in this graph or an enclosing one. It is no substitute for ONNX's
// checker, which knows every operator's schema.
func (m *Model) Validate() error {
	if m.Graph == nil {
		return errors.New("model has no graph")
	}
	if len(m.Opsets) == 0 {
		return errors.New("model imports no opset: add one, e.g. Opset{Version: 13}")
	}
	seen := map[string]bool{}
	for _, o := range m.Opsets {
		if seen[o.Domain] {
			return fmt.Errorf("opset domain %q imported twice", o.Domain)
		}
		seen[o.Domain] = true
		if o.Version < 1 {
			return fmt.Errorf("opset domain %q: version %d, want >= 1", o.Domain, o.Version)
		}
	}
	if !seen[""] {
		return errors.New(`model does not import the default domain "" (ai.onnx)`)
	}
	for k := range m.Metadata {
		if k == "" {
			return errors.New("metadata with an empty key")
		}
	}
	if m.IRVersion < 0 {
		return fmt.Errorf("IR version %d is negative", m.IRVersion)
	}
	return m.Graph.validate(nil, true)
}

// scope is the set of names visible to a graph's nodes: its own and, through
// outer, its enclosing graphs'.
type scope struct {
	names map[string]bool
	outer *scope
}

func (s *scope) has(name string) bool {
	for ; s != nil; s = s.outer {
		if s.names[name] {
			return true
		}
	}
	return false
}

func (g *Graph) validate(outer *scope, top bool) error {
	if err := g.check(outer, top); err != nil {
		return fmt.Errorf("graph %q: %w", g.Name, err)
	}
	return nil
}

func (g *Graph) check(outer *scope, top bool) error {
	s := &scope{names: map[string]bool{}, outer: outer}
	// define adds a name a graph input, initializer or node output
	// introduces; a graph input may share its name with an initializer
	// (IR 3 files list initializers as inputs, giving them defaults).
	define := func(name, what string, shared map[string]bool) error {
		if name == "" {
			return fmt.Errorf("%s with an empty name", what)
		}
		if s.names[name] && !shared[name] {
			return fmt.Errorf("%s %q: the name is already defined", what, name)
		}
		s.names[name] = true
		return nil
	}
	inputs := map[string]bool{}
	for _, v := range g.Inputs {
		if err := v.check("input", top); err != nil {
			return err
		}
		if inputs[v.Name] {
			return fmt.Errorf("input %q is declared twice", v.Name)
		}
		inputs[v.Name] = true
		define(v.Name, "input", nil)
	}
	for _, t := range g.Initializers {
		if t == nil {
			return errors.New("nil initializer")
		}
		if err := define(t.Name, "initializer", inputs); err != nil {
			return err
		}
		if err := t.check(); err != nil {
			return fmt.Errorf("initializer: %w", err)
		}
	}
	for _, v := range g.ValueInfos {
		if err := v.check("value_info", false); err != nil {
			return err
		}
	}
	for i, n := range g.Nodes {
		if err := n.check(s); err != nil {
			return fmt.Errorf("node %d %q (%s): %w", i, n.Name, n.OpType, err)
		}
		for _, o := range n.Outputs {
			if o == "" {
				continue // an optional output left out
			}
			if err := define(o, fmt.Sprintf("node %d %q (%s): output", i, n.Name, n.OpType), nil); err != nil {
				return err
			}
		}
	}
	for _, v := range g.Outputs {
		if err := v.check("output", top); err != nil {
			return err
		}
		if !s.has(v.Name) {
			return fmt.Errorf("output %q is not computed: no input, initializer or node output has its name", v.Name)
		}
	}
	return nil
}

func (n *Node) check(s *scope) error {
	if n.OpType == "" {
		return errors.New("no op type")
	}
	for _, in := range n.Inputs {
		if in != "" && !s.has(in) {
			return fmt.Errorf("input %q is not defined before this node (not a graph input, an initializer or an earlier node's output)", in)
		}
	}
	names := map[string]bool{}
	for _, a := range n.Attrs {
		if a.Name == "" {
			return errors.New("attribute with an empty name")
		}
		if names[a.Name] {
			return fmt.Errorf("attribute %q given twice", a.Name)
		}
		names[a.Name] = true
		if err := a.check(s); err != nil {
			return fmt.Errorf("attribute %q: %w", a.Name, err)
		}
	}
	return nil
}

func (a *Attribute) check(s *scope) error {
	switch a.Type {
	case AttrTypeFloat, AttrTypeInt, AttrTypeString, AttrTypeFloats, AttrTypeInts, AttrTypeStrings:
	case AttrTypeTensor:
		if a.Tensor == nil {
			return errors.New("TENSOR attribute without a tensor")
		}
		return a.Tensor.check()
	case AttrTypeGraph:
		if a.Graph == nil {
			return errors.New("GRAPH attribute without a graph")
		}
		return a.Graph.validate(s, false)
	default:
		return fmt.Errorf("type %s is not supported (shrink handles FLOAT, INT, STRING, TENSOR, GRAPH, FLOATS, INTS, STRINGS)", a.Type)
	}
	return nil
}

// check validates a value's type; top-level inputs and outputs must have one.
func (v *ValueInfo) check(what string, typed bool) error {
	if v.Name == "" {
		return fmt.Errorf("%s with an empty name", what)
	}
	if _, ok := onnxpb.TensorProto_DataType_name[int32(v.Type)]; !ok {
		return fmt.Errorf("%s %q: unknown element type %d", what, v.Name, v.Type)
	}
	if typed && (v.Type == TypeUndefined) {
		return fmt.Errorf("%s %q has no element type (the main graph's inputs and outputs need one)", what, v.Name)
	}
	for i, d := range v.Shape {
		if d.Param != "" && d.Value != 0 {
			return fmt.Errorf("%s %q: dimension %d is both %d and %q", what, v.Name, i, d.Value, d.Param)
		}
		if d.Param == "" && d.Value < -1 {
			return fmt.Errorf("%s %q: dimension %d is %d (want a size >= 0, a name, or -1 for unknown)", what, v.Name, i, d.Value)
		}
	}
	return nil
}
