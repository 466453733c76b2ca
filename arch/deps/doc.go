// Package deps finds the channels of a layer graph that structured pruning
// must remove together, from the graph alone (no tensors), as Torch-Pruning's
// DependencyGraph does (Fang et al., DepGraph, CVPR 2023).
//
// Removing output channel c of a convolution also removes entry c of its bias,
// of the batch norm after it, input channel c of every convolution or linear
// layer that reads it (through ReLUs, pooling and dropout), channel c of every
// other operand of a residual add it joins, and, after a flatten, the H×W block
// of a linear layer's inputs that channel became. Analyze follows these rules
// over every edge and returns the result as groups of channels, each channel
// listing every tensor slice (layer, tensor, axis, index range) that lives and
// dies with it:
//
//	d := deps.Analyze(graph)
//	g := d.GroupOf("layer1.0.conv1")     // its output channels and all they touch
//	for _, s := range g.Channels[3].Slices { ... }
//	spec, err := d.Narrow(spec, map[*deps.Group][]int{g: {3, 7}})
//
// The rules, per layer type:
//
//   - conv2d (groups 1) and linear start new channels (their weight's rows and
//     their bias) and read their input's (the weight's columns: dim 1);
//   - a depthwise conv2d (groups = input channels) ties output channels
//     c·k .. c·k+k-1 to its input channel c;
//   - batch norm carries its input's channels, with its per-channel tensors;
//   - relu, relu6, sigmoid, tanh, silu, gelu, dropout, max and average
//     pooling and adaptive average pooling pass channels through;
//   - flatten turns channel c of a [C, H, W] input into features
//     c·H·W .. (c+1)·H·W-1;
//   - add makes channel c of every operand one channel;
//   - concat places each operand's channels after the previous operands'.
//
// Anything else (grouped convolutions, LSTMs, sequence tensors, layer types
// these rules do not know) blocks the channels it touches, as do the network's
// input and the output layer's units (the classes): such groups are reported
// with the reason and never pruned.
package deps
