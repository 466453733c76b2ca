package model

import (
	"fmt"
	"reflect"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/op"
)

// executor runs the part of a gorgonia graph that some outputs need, calling each
// op's Do in dependency order. It replaces gorgonia's TapeMachine in the training
// loop for two measured reasons: RunAll starts a goroutine and hands values over
// channels on every call (about 70 µs, most of a batch-1 forward pass), and the
// tape allocates an argument slice per instruction, so a step could never run
// allocation-free. The graph, its ops and its symbolic gradients are gorgonia's;
// only the loop that calls Do is ours. Like gorgonia.CompileFunction, it computes
// nothing the outputs do not need (no gradient for the input).
type executor struct {
	steps []execStep
	vals  []G.Value
	index map[*G.Node]int
}

type execStep struct {
	node *G.Node
	in   []int
	args []G.Value
	out  int
	// sum, when set, is the output buffer of a sum of two gradients that
	// the executor computes itself (see isGradSum).
	sum *tensor.Dense
}

// newExecutor orders the nodes the outputs depend on. Leaves must hold values:
// inputs and parameters are bound to the Net's buffers, constants to theirs.
func newExecutor(g *G.ExprGraph, outputs G.Nodes) (*executor, error) {
	e := &executor{index: map[*G.Node]int{}}
	var visit func(n *G.Node) error
	visit = func(n *G.Node) error {
		if _, done := e.index[n]; done {
			return nil
		}
		children := childrenOf(g, n)
		for _, c := range children {
			if err := visit(c); err != nil {
				return err
			}
		}
		i := len(e.vals)
		e.index[n] = i
		if len(children) == 0 && n.Value() != nil {
			e.vals = append(e.vals, n.Value())
			return nil
		}
		if n.Op() == nil {
			return fmt.Errorf("graph node %s has neither a value nor an op", n.Name())
		}
		e.vals = append(e.vals, nil)
		st := execStep{node: n, out: i, args: make([]G.Value, len(children))}
		for _, c := range children {
			st.in = append(st.in, e.index[c])
		}
		if isGradSum(n, children) {
			st.sum = tensor.New(tensor.WithShape(n.Shape()...), tensor.Of(tensor.Float32))
		}
		e.steps = append(e.steps, st)
		return nil
	}
	for _, o := range outputs {
		if err := visit(o); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// childrenOf lists a node's inputs in argument order.
func childrenOf(g *G.ExprGraph, n *G.Node) []*G.Node {
	it := g.From(n.ID())
	var out []*G.Node
	for it.Next() {
		out = append(out, it.Node().(*G.Node))
	}
	return out
}

// run executes every step once.
func (e *executor) run() error {
	for i := range e.steps {
		st := &e.steps[i]
		for j, k := range st.in {
			st.args[j] = e.vals[k]
		}
		if st.sum != nil {
			addInto(op.F32(st.sum), op.F32(st.args[0]), op.F32(st.args[1]))
			e.vals[st.out] = st.sum
			continue
		}
		v, err := st.node.Op().Do(st.args...)
		if err != nil {
			return fmt.Errorf("%s: %w", st.node.Op(), err)
		}
		e.vals[st.out] = v
	}
	return nil
}

// value is a node's value after the last run.
func (e *executor) value(n *G.Node) G.Value {
	i, ok := e.index[n]
	if !ok {
		panic(fmt.Sprintf("model: node %s is not computed by this executor", n.Name()))
	}
	return e.vals[i]
}

// isGradSum reports whether n is gorgonia's own elementwise addition of two
// float32 tensors of its shape. gorgonia.Grad adds one for every node whose
// value feeds two consumers (a residual block's input feeds its first
// convolution and the shortcut's sum), and its Do allocates the result, and
// with UsePreallocDo still a few values for the tensor engine's options, on
// every step. The executor computes these sums into a buffer of its own:
// float32 a[i]+b[i], the same values gorgonia's add gives.
func isGradSum(n *G.Node, children []*G.Node) bool {
	o := n.Op()
	if opPackage(o) != reflect.TypeOf(G.Nodes{}).PkgPath() || !strings.HasPrefix(o.String(), "+ ") ||
		n.Dtype() != tensor.Float32 || len(children) != 2 {
		return false
	}
	for _, c := range children {
		if c.Dtype() != tensor.Float32 || !c.Shape().Eq(n.Shape()) || c.Shape().IsScalar() {
			return false
		}
	}
	return true
}

// addInto sets dst = a + b elementwise.
func addInto(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] + b[i]
	}
}

// opPackage is the import path of the package that defines an op's type.
func opPackage(o G.Op) string {
	t := reflect.TypeOf(o)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath()
}
