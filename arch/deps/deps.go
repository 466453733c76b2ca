package deps

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/shrink-ml/shrink/arch"
)

// Role is what a slice is to its channel.
type Role int

const (
	// Out: the layer makes the channel (a row of its weight, an entry of its
	// bias).
	Out Role = iota
	// In: the layer reads the channel (columns of its weight).
	In
	// Norm: a per-channel tensor of a layer that carries the channel through
	// (batch norm's weight, bias and running statistics).
	Norm
)

func (r Role) String() string {
	switch r {
	case Out:
		return "out"
	case In:
		return "in"
	}
	return "norm"
}

// Slice is one tensor's share of a channel: the entries of the layer's tensor
// whose index along Axis is in [Start, End).
type Slice struct {
	Layer  string    // the layer's name
	Node   int       // its index in the graph
	Tensor string    // the tensor's suffix: weight, bias, running_mean, ...
	Kind   arch.Role // the tensor's role: Weight, Param or Buffer
	Axis   int
	Start  int
	End    int
	Role   Role
}

func (s Slice) String() string {
	return fmt.Sprintf("%s.%s[%s%d:%d] (%s)", s.Layer, s.Tensor, strings.Repeat(":, ", s.Axis), s.Start, s.End, s.Role)
}

// Channel is one prunable unit: every slice that lives and dies with it.
type Channel struct {
	Slices []Slice
}

// Group is channels coupled the same way, such as a convolution's output
// channels with the batch norm after it and the next convolution's inputs, or
// every channel of a residual stage. Channel i of a group is row i of its
// first producer.
type Group struct {
	ID int
	// Name is the group's first producer (in forward order).
	Name     string
	Channels []Channel
	// Blocked says why the group cannot be pruned ("" when it can).
	Blocked string
}

// Producers are the layers whose weight rows make the group's channels, in
// forward order.
func (g *Group) Producers() []string {
	return g.layers(func(s Slice) bool { return s.Role == Out && s.Kind == arch.Weight })
}

// Layers are every layer with a slice in the group, in forward order.
func (g *Group) Layers() []string { return g.layers(func(Slice) bool { return true }) }

func (g *Group) layers(keep func(Slice) bool) []string {
	type named struct {
		node int
		name string
	}
	var ls []named
	for _, ch := range g.Channels[:1] {
		for _, s := range ch.Slices {
			if keep(s) && !slices.Contains(ls, named{s.Node, s.Layer}) {
				ls = append(ls, named{s.Node, s.Layer})
			}
		}
	}
	slices.SortFunc(ls, func(a, b named) int { return cmp.Compare(a.node, b.node) })
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.name
	}
	return out
}

func (g *Group) String() string {
	s := fmt.Sprintf("group %d (%s): %d channels over %s", g.ID, g.Name, len(g.Channels), strings.Join(g.Layers(), ", "))
	if g.Blocked != "" {
		s += "; blocked: " + g.Blocked
	}
	return s
}

// Deps is a graph's channel groups.
type Deps struct {
	Graph  *arch.Graph
	Groups []*Group
	// depthwise is the channel multiplier of each depthwise convolution, by
	// node (0 for other nodes).
	depthwise []int
}

// GroupsOf lists the groups holding the layer's output channels (its weight's
// rows): one, unless its channels go different ways (part into one add, part
// into another through a concat).
func (d *Deps) GroupsOf(layer string) []*Group {
	var out []*Group
	for _, g := range d.Groups {
		if slices.Contains(g.Producers(), layer) {
			out = append(out, g)
		}
	}
	return out
}

// passThrough are the layer types whose output channel c is a function of
// their input channel c alone, without tensors.
var passThrough = map[string]bool{
	"relu": true, "relu6": true, "sigmoid": true, "tanh": true, "silu": true, "gelu": true,
	"dropout": true, "maxpool2d": true, "avgpool2d": true, "adaptive_avgpool2d": true,
}

// builder unions channel variables: one per channel of every layer's output
// (a vector's features count as channels) and of the network's input.
type builder struct {
	g      *arch.Graph
	parent []int
	reason []string // why a variable is blocked
	slices [][]Slice
	inBase int
	base   []int
	dw     []int
}

func (b *builder) alloc(n int) int {
	at := len(b.parent)
	for i := 0; i < n; i++ {
		b.parent = append(b.parent, at+i)
	}
	b.reason = append(b.reason, make([]string, n)...)
	b.slices = append(b.slices, make([][]Slice, n)...)
	return at
}

func (b *builder) find(x int) int {
	for b.parent[x] != x {
		b.parent[x] = b.parent[b.parent[x]]
		x = b.parent[x]
	}
	return x
}

func (b *builder) union(x, y int) {
	x, y = b.find(x), b.find(y)
	if x == y {
		return
	}
	// The lower variable (earlier in the graph) stays the root, so a group's
	// channels are numbered by the layer that makes them first.
	if y < x {
		x, y = y, x
	}
	b.parent[y] = x
}

func (b *builder) block(v int, why string) {
	if b.reason[v] == "" {
		b.reason[v] = why
	}
}

// channels is how many channel variables a tensor of this per-sample shape
// has: its first dimension.
func channels(s arch.Shape) int {
	if len(s) == 0 {
		return 1
	}
	return s[0]
}

// in is the variable of channel c of node n's k-th input.
func (b *builder) in(n *arch.Node, k, c int) int {
	if j := n.Inputs[k]; j != arch.ModelInput {
		return b.base[j] + c
	}
	return b.inBase + c
}

func (b *builder) out(n *arch.Node, c int) int { return b.base[n.Index] + c }

// blockAll blocks every channel the node reads or makes.
func (b *builder) blockAll(n *arch.Node, why string) {
	for k := range n.Inputs {
		for c := 0; c < channels(n.In[k]); c++ {
			b.block(b.in(n, k, c), why)
		}
	}
	for c := 0; c < channels(n.Out); c++ {
		b.block(b.out(n, c), why)
	}
}

func (b *builder) slice(v int, n *arch.Node, t arch.Tensor, axis, start, end int, role Role) {
	b.slices[v] = append(b.slices[v], Slice{Layer: n.Name, Node: n.Index, Tensor: t.Suffix, Kind: t.Role,
		Axis: axis, Start: start, End: end, Role: role})
}

// Analyze finds the channel groups of a graph.
func Analyze(g *arch.Graph) *Deps {
	b := &builder{g: g, dw: make([]int, len(g.Nodes))}
	b.inBase = b.alloc(channels(g.Input))
	for _, n := range g.Nodes {
		b.base = append(b.base, b.alloc(channels(n.Out)))
	}
	for c := 0; c < channels(g.Input); c++ {
		b.block(b.inBase+c, "its channels are the network's input")
	}
	for _, n := range g.Nodes {
		b.node(n)
	}
	last := g.Output()
	for c := 0; c < channels(last.Out); c++ {
		b.block(b.out(last, c), fmt.Sprintf("layer %s is the output layer: its units are the classes", last.Label()))
	}
	return b.collect()
}

// node applies one layer's rule.
func (b *builder) node(n *arch.Node) {
	for _, s := range append([]arch.Shape{n.Out}, n.In...) {
		if len(s) != 1 && len(s) != 3 {
			b.blockAll(n, fmt.Sprintf("layer %s (%s) works on %s tensors: structured pruning follows channels of images [C, H, W] and vectors [F] only", n.Label(), n.Type, s))
			return
		}
	}
	tensors := map[string]arch.Tensor{}
	for _, t := range n.Tensors() {
		tensors[t.Suffix] = t
	}
	weight, bias := tensors["weight"], tensors["bias"]
	_, hasBias := tensors["bias"]
	switch {
	case n.Type == "conv2d":
		cin, out := n.In[0][0], n.Out[0]
		groups := cin / weight.Shape[1]
		switch {
		case groups == 1:
			for c := 0; c < out; c++ {
				b.slice(b.out(n, c), n, weight, 0, c, c+1, Out)
				if hasBias {
					b.slice(b.out(n, c), n, bias, 0, c, c+1, Out)
				}
			}
			for c := 0; c < cin; c++ {
				b.slice(b.in(n, 0, c), n, weight, 1, c, c+1, In)
			}
		case groups == cin:
			// Depthwise: output channel j reads input channel j/k alone.
			k := out / cin
			b.dw[n.Index] = k
			for j := 0; j < out; j++ {
				b.union(b.out(n, j), b.in(n, 0, j/k))
				b.slice(b.out(n, j), n, weight, 0, j, j+1, Out)
				if hasBias {
					b.slice(b.out(n, j), n, bias, 0, j, j+1, Out)
				}
			}
		default:
			for c := 0; c < out; c++ {
				b.slice(b.out(n, c), n, weight, 0, c, c+1, Out)
			}
			b.blockAll(n, fmt.Sprintf("layer %s is a grouped convolution (groups %d of %d channels): only depthwise (groups = input channels) and ordinary ones are pruned", n.Label(), groups, cin))
		}
	case n.Type == "linear":
		if len(n.In[0]) != 1 {
			b.blockAll(n, fmt.Sprintf("layer %s (linear) reads a %s tensor: structured pruning follows a linear layer's input features only on vectors", n.Label(), n.In[0]))
			return
		}
		for c := 0; c < n.Out[0]; c++ {
			b.slice(b.out(n, c), n, weight, 0, c, c+1, Out)
			if hasBias {
				b.slice(b.out(n, c), n, bias, 0, c, c+1, Out)
			}
		}
		for f := 0; f < n.In[0][0]; f++ {
			b.slice(b.in(n, 0, f), n, weight, 1, f, f+1, In)
		}
	case n.Type == "batchnorm2d" || n.Type == "batchnorm1d":
		for c := 0; c < n.Out[0]; c++ {
			b.union(b.out(n, c), b.in(n, 0, c))
			for _, t := range n.Tensors() {
				if !t.Int64 && slices.Equal(t.Shape, []int{n.Out[0]}) {
					b.slice(b.out(n, c), n, t, 0, c, c+1, Norm)
				}
			}
		}
	case passThrough[n.Type]:
		for c := 0; c < n.Out[0]; c++ {
			b.union(b.out(n, c), b.in(n, 0, c))
		}
	case n.Type == "flatten":
		x := n.In[0]
		block := arch.Shape(x[1:]).Size()
		for f := 0; f < n.Out[0]; f++ {
			b.union(b.out(n, f), b.in(n, 0, f/block))
		}
	case n.Type == "add":
		for k := range n.Inputs {
			for c := 0; c < n.Out[0]; c++ {
				b.union(b.out(n, c), b.in(n, k, c))
			}
		}
	case n.Type == "concat":
		at := 0
		for k := range n.Inputs {
			for c := 0; c < n.In[k][0]; c++ {
				b.union(b.out(n, at+c), b.in(n, k, c))
			}
			at += n.In[k][0]
		}
	default:
		b.blockAll(n, fmt.Sprintf("layer %s (%s) is not a type structured pruning follows channels through", n.Label(), n.Type))
	}
}

// collect turns the variables' components into channels, and channels coupled
// the same way into groups.
func (b *builder) collect() *Deps {
	type comp struct {
		slices []Slice
		reason string
		first  int
	}
	comps := map[int]*comp{}
	var roots []int
	for v := range b.parent {
		r := b.find(v)
		c := comps[r]
		if c == nil {
			c = &comp{first: v}
			comps[r] = c
			roots = append(roots, r)
		}
		c.slices = append(c.slices, b.slices[v]...)
		if c.reason == "" {
			c.reason = b.reason[v]
		}
	}
	d := &Deps{Graph: b.g, depthwise: b.dw}
	bySig := map[string]*Group{}
	for _, r := range roots {
		c := comps[r]
		if !slices.ContainsFunc(c.slices, func(s Slice) bool { return s.Kind == arch.Weight }) {
			continue // no weights: nothing to prune (the input image, a dangling tensor)
		}
		ch := Channel{Slices: merge(c.slices)}
		sig := signature(ch)
		g := bySig[sig]
		if g == nil {
			g = &Group{ID: len(d.Groups)}
			bySig[sig] = g
			d.Groups = append(d.Groups, g)
		}
		g.Channels = append(g.Channels, ch)
		if g.Blocked == "" {
			g.Blocked = c.reason
		}
	}
	for _, g := range d.Groups {
		if p := g.Producers(); len(p) > 0 {
			g.Name = p[0]
		} else {
			g.Name = "input" // the network's input, read by its first layers
		}
	}
	return d
}

// merge sorts a channel's slices and joins adjacent ranges of one tensor axis
// (a flattened channel's block of features, a depthwise channel's k rows).
func merge(ss []Slice) []Slice {
	slices.SortStableFunc(ss, func(a, b Slice) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Role, b.Role), strings.Compare(a.Tensor, b.Tensor),
			cmp.Compare(a.Axis, b.Axis), cmp.Compare(a.Start, b.Start))
	})
	var out []Slice
	for _, s := range ss {
		if k := len(out) - 1; k >= 0 {
			p := &out[k]
			if p.Node == s.Node && p.Tensor == s.Tensor && p.Axis == s.Axis && p.Role == s.Role && p.End == s.Start {
				p.End = s.End
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

// signature is what channels of one group share: the tensors and axes they
// touch and how much of each.
func signature(ch Channel) string {
	var sb strings.Builder
	for _, s := range ch.Slices {
		fmt.Fprintf(&sb, "%d/%s/%d/%d/%d;", s.Node, s.Tensor, s.Axis, s.Role, s.End-s.Start)
	}
	return sb.String()
}
