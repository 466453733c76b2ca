package model

import (
	"fmt"
	"reflect"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shrink-ml/shrink/internal/vec"
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
	sum  *sumInto // set for gorgonia's gradient sums, run without allocating
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
		if isGradientSum(n.Op()) {
			st.sum = &sumInto{}
		}
		for _, c := range children {
			st.in = append(st.in, e.index[c])
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
		var v G.Value
		var err error
		if st.sum != nil {
			v, err = st.sum.do(st.node.Op(), st.args)
		} else {
			v, err = st.node.Op().Do(st.args...)
		}
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

// gorgoniaAdd is the type of gorgonia's elementwise operators.
var gorgoniaAdd = func() reflect.Type {
	g := G.NewGraph()
	a := G.NewScalar(g, G.Float32, G.WithName("a"))
	return reflect.TypeOf(G.Must(G.Add(a, G.NewScalar(g, G.Float32, G.WithName("b")))).Op())
}()

// isGradientSum reports gorgonia's elementwise +, which backpropagation adds
// where a value feeds two nodes (a LoRA layer's input feeds its base and its
// adapter; a residual block's input its convolution and its shortcut) to sum
// their gradients. gorgonia's allocates its result on every call.
func isGradientSum(o G.Op) bool {
	return reflect.TypeOf(o) == gorgoniaAdd && strings.HasPrefix(o.String(), "+ ") && o.Arity() == 2
}

// sumInto is that sum into a reused buffer: a + b elementwise, bit for bit
// what gorgonia computes. Other operands (broadcasts, other types) go to
// gorgonia's own Do.
type sumInto struct {
	out *tensor.Dense
}

func (s *sumInto) do(o G.Op, args []G.Value) (G.Value, error) {
	a, okA := args[0].(*tensor.Dense)
	b, okB := args[1].(*tensor.Dense)
	if !okA || !okB || a.Dtype() != tensor.Float32 || b.Dtype() != tensor.Float32 || !a.Shape().Eq(b.Shape()) {
		return o.Do(args...)
	}
	y := buffer(&s.out, a.Shape()...)
	vec.Add(f32(y), f32(a), f32(b))
	return y, nil
}
