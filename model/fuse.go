package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/nn"
)

// A fused chain is a convolution and the layers after it that only pass its
// output on, computed in the convolution's output pass (nn.Fusion): its
// bias, optionally an eval batch norm, then optionally a ReLU, or a
// two-input add (a residual block's) and optionally a ReLU after it. Each absorbed layer reads only
// the previous one, which nothing else reads, so no other layer misses an
// output; the chain is built where its last layer stands, when the add's
// other input (a shortcut computed after the convolution, like a
// downsample) exists too.
type fusedChain struct {
	conv, norm int // norm -1: none (a batch norm folded into the convolution's bias)
	relu       bool
	add        int // the add; -1: none
	residual   int // the add's other input (a layer or arch.ModelInput)
	last       int
	int8       *nn.Int8 // the convolution's integer form; nil: float
	// cl: the chain's output is laid out channels-last (nn.Fusion): every
	// reader is an integer chain's convolution or residual.
	cl bool
	// codesOut: the chain's output also passes as the codes of its one
	// reading convolution on the taps route (codesIn of that chain);
	// codesOnly: nothing else reads it (nn.Fusion).
	codesOut, codesIn *nn.Int8Codes
	codesOnly         bool
}

// fusionPlan finds the model's fused chains: by last layer, and the set of
// layers they absorb before it (built with the chain, skipped in order).
func (n *Net) fusionPlan() (chains map[int]*fusedChain, absorbed map[int]bool) {
	layers := n.Model.Layers
	readers := make([][]int, len(layers))
	for i, l := range layers {
		for _, j := range l.Inputs {
			if j >= 0 {
				readers[j] = append(readers[j], i)
			}
		}
	}
	// only returns layer i's single reader when it is of type typ, reads
	// only what it must and carries no compression of its own.
	only := func(i int, typ string) int {
		if len(readers[i]) != 1 {
			return -1
		}
		r := readers[i][0]
		l := layers[r]
		if l.Type != typ || l.Input != nil || l.Adapter != nil {
			return -1
		}
		return r
	}
	chains, absorbed = map[int]*fusedChain{}, map[int]bool{}
	claimed := map[int]bool{}
	for i, l := range layers {
		if _, ok := l.Config.(*nn.Conv2d); !ok || l.Rank != 0 || l.Adapter != nil || len(l.Weights) != 1 || n.sparse[l.Name] != nil || l.RunsInt8() {
			continue
		}
		ch := &fusedChain{conv: i, norm: -1, add: -1, last: i, int8: l.int8Form(n.staticInt8)}
		if ch.int8 != nil && ch.int8.Static == nil {
			continue
		}
		if norm := only(i, "batchnorm2d"); norm >= 0 && len(layers[norm].Inputs) == 1 {
			ch.norm, ch.last = norm, norm
		}
		if r := only(ch.last, "relu"); r >= 0 {
			ch.relu, ch.last = true, r
		} else if a := only(ch.last, "add"); a >= 0 && !claimed[a] && len(layers[a].Inputs) == 2 && layers[a].Inputs[0] != layers[a].Inputs[1] {
			// An add of two chains (a block's and its downsample's) joins
			// the first.
			claimed[a] = true
			ch.add, ch.residual = a, layers[a].Inputs[0]
			if ch.residual == ch.last {
				ch.residual = layers[a].Inputs[1]
			}
			ch.last = a
			if r := only(a, "relu"); r >= 0 {
				ch.relu, ch.last = true, r
			}
		}
		chains[ch.last] = ch
		for _, j := range []int{ch.conv, ch.norm, ch.add} {
			if j >= 0 && j != ch.last {
				absorbed[j] = true
			}
		}
	}
	channelsLast(layers, readers, chains)
	if err := int8Codes(layers, readers, chains); err != nil {
		// A plan without codes computes the same values.
		for _, ch := range chains {
			ch.codesOut, ch.codesIn, ch.codesOnly = nil, nil, false
		}
	}
	return chains, absorbed
}

// int8Codes passes a tensor as codes (nn.Int8Codes) from an integer chain
// on the taps route to the one such chain that reads it as its input, so
// the reader neither reads floats nor quantizes them; the floats are still
// written when anything else reads them (a residual add). In a quantized
// ResNet every convolution inside a block hands its output to the next
// this way.
func int8Codes(layers []*Layer, readers [][]int, chains map[int]*fusedChain) error {
	byConv := map[int]*fusedChain{}
	for _, ch := range chains {
		byConv[ch.conv] = ch
	}
	taps := func(ch *fusedChain, read bool) bool {
		conv, ok := layers[ch.conv].Config.(*nn.Conv2d)
		if !ok || ch.int8 == nil || ch.int8.Static == nil || ch.cl {
			return false
		}
		if read {
			return conv.ReadsInt8Codes()
		}
		return conv.RunsInt8Taps()
	}
	for last, ch := range chains {
		if !taps(ch, false) {
			continue
		}
		var reader *fusedChain
		others := 0
		for _, r := range readers[last] {
			if c := byConv[r]; c != nil && layers[r].Inputs[0] == last && taps(c, true) && reader == nil {
				reader = c
				continue
			}
			others++
		}
		if reader == nil {
			continue
		}
		codes, err := layers[reader.conv].Config.(*nn.Conv2d).Int8Codes(*reader.int8.Static)
		if err != nil {
			return err
		}
		ch.codesOut, ch.codesOnly, reader.codesIn = codes, others == 0, codes
	}
	return nil
}

// channelsLast marks the integer chains whose outputs only integer chains
// read (as their convolution's input or their residual): those stay
// channels-last, skipping a transpose out of one convolution and into the
// next. A model's output, or a tensor a pooling or float layer reads,
// stays [B, C, H, W].
func channelsLast(layers []*Layer, readers [][]int, chains map[int]*fusedChain) {
	if !nn.Int8ConvChannelsLast() {
		return
	}
	byConv := map[int]*fusedChain{}
	byAdd := map[int]*fusedChain{}
	for _, ch := range chains {
		byConv[ch.conv] = ch
		if ch.add >= 0 {
			byAdd[ch.add] = ch
		}
	}
	for last, ch := range chains {
		if ch.int8 == nil || len(readers[last]) == 0 {
			continue
		}
		ch.cl = true
		for _, r := range readers[last] {
			if c := byConv[r]; c != nil && c.int8 != nil && layers[r].Inputs[0] == last {
				continue
			}
			if c := byAdd[r]; c != nil && c.int8 != nil && c.residual == last {
				continue
			}
			ch.cl = false
			break
		}
	}
}

// buildChain adds a fused chain: its convolution with the chain's layers
// in its output pass.
func (n *Net) buildChain(ch *fusedChain, outs []*G.Node, in *G.Node) (*G.Node, error) {
	node := func(j int) *G.Node {
		if j == arch.ModelInput {
			return in
		}
		return outs[j]
	}
	l := n.Model.Layers[ch.conv]
	x := node(l.Inputs[0])
	b := &layerBuilder{net: n, layer: l, int8: ch.int8}
	if b.int8 == nil {
		var err error
		if x, err = n.input(x, l); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Label(), err)
		}
	}
	f := nn.Fusion{ReLU: ch.relu, OutputChannelsLast: ch.cl, OutputCodes: ch.codesOut, InputCodes: ch.codesIn, CodesOnly: ch.codesOnly}
	if in := n.chains[l.Inputs[0]]; in != nil {
		f.InputChannelsLast = in.cl
	}
	if ch.norm >= 0 {
		normLayer := n.Model.Layers[ch.norm]
		bn, ok := normLayer.Config.(*nn.BatchNorm)
		if !ok {
			return nil, fmt.Errorf("layer %s: not a batch norm", normLayer.Label())
		}
		var err error
		if f.Norm, err = bn.Eval(&layerBuilder{net: n, layer: normLayer}); err != nil {
			return nil, err
		}
	}
	if ch.add >= 0 {
		f.Residual = node(ch.residual)
		if r := n.chains[ch.residual]; r != nil {
			f.ResidualChannelsLast = r.cl
		}
	}
	out, err := l.Config.(*nn.Conv2d).BuildFused(b, x, f)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Label(), err)
	}
	return out, nil
}
