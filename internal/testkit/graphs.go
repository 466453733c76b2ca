package testkit

import "github.com/shrink-ml/shrink/arch"

// Graph is a small network for structured pruning's tests.
type Graph struct {
	Name string
	Spec arch.Spec
}

// Graphs are the small networks structured pruning is tested on: a residual
// block, a depthwise-separable block, a concat, and a flatten into a linear
// layer (arch/deps checks their groups, stages/prune the pruned numbers).
func Graphs() []Graph {
	type keys = map[string]any
	l := arch.NewLayer
	return []Graph{
		{"residual block", arch.Spec{Input: arch.Shape{2, 6, 6}, Classes: 3, Layers: []arch.LayerSpec{
			l("stem", "conv2d", keys{"out": 4, "kernel": 3, "padding": 1, "bias": false}),
			l("stem_bn", "batchnorm2d", nil),
			l("stem_relu", "relu", nil),
			l("block.conv1", "conv2d", keys{"out": 5, "kernel": 3, "padding": 1, "bias": false}),
			l("block.bn1", "batchnorm2d", nil),
			l("", "relu", nil),
			l("block.conv2", "conv2d", keys{"out": 4, "kernel": 3, "padding": 1, "bias": false}),
			l("block.bn2", "batchnorm2d", nil),
			l("block.add", "add", nil, "block.bn2", "stem_relu"),
			l("block.relu", "relu", nil),
			l("", "adaptive_avgpool2d", nil),
			l("", "flatten", nil),
			l("fc", "linear", keys{"out": 3}),
		}}},
		{"depthwise separable", arch.Spec{Input: arch.Shape{1, 6, 6}, Classes: 3, Layers: []arch.LayerSpec{
			l("conv", "conv2d", keys{"out": 4, "kernel": 3, "padding": 1}),
			l("", "relu", nil),
			l("dw", "conv2d", keys{"out": 8, "kernel": 3, "padding": 1, "groups": 4}),
			l("dw_bn", "batchnorm2d", nil),
			l("", "relu", nil),
			l("pw", "conv2d", keys{"out": 6, "kernel": 1}),
			l("", "relu", nil),
			l("", "maxpool2d", keys{"kernel": 2}),
			l("", "flatten", nil),
			l("fc", "linear", keys{"out": 3}),
		}}},
		{"concat", arch.Spec{Input: arch.Shape{1, 5, 5}, Classes: 2, Layers: []arch.LayerSpec{
			l("a", "conv2d", keys{"out": 3, "kernel": 3, "padding": 1}),
			l("a_relu", "relu", nil),
			l("b", "conv2d", keys{"out": 2, "kernel": 1}, "a_relu"),
			l("b_relu", "relu", nil),
			l("cat", "concat", nil, "a_relu", "b_relu"),
			l("c", "conv2d", keys{"out": 4, "kernel": 3}),
			l("", "relu", nil),
			l("", "flatten", nil),
			l("fc", "linear", keys{"out": 2}),
		}}},
		{"flatten into a linear layer", arch.Spec{Input: arch.Shape{1, 4, 4}, Classes: 3, Layers: []arch.LayerSpec{
			l("conv", "conv2d", keys{"out": 3, "kernel": 2}),
			l("", "relu", nil),
			l("", "flatten", nil),
			l("fc1", "linear", keys{"out": 5}),
			l("", "relu", nil),
			l("fc2", "linear", keys{"out": 3}),
		}}},
	}
}
