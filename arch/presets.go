package arch

import "fmt"

// Presets expand to layer lists. Parameter-free layers are named only where a
// later `from` must refer to them (a residual block's input), with names that
// read like PyTorch's module paths.

type keys = map[string]any

// mlpLayers: fc1..fcN with ReLU between.
func mlpLayers(s Spec) []LayerSpec {
	widths := append(append([]int{}, s.Hidden...), s.Classes)
	var out []LayerSpec
	for i, w := range widths {
		if i > 0 {
			out = append(out, NewLayer("", "relu", nil))
		}
		out = append(out, NewLayer(fmt.Sprintf("fc%d", i+1), "linear", keys{"out": w}))
	}
	return out
}

// lenet5Layers: two 5x5 convolutions, each followed by ReLU and 2x2 max
// pooling, then three fully connected layers (28 -> 24 -> 12 -> 8 -> 4).
func lenet5Layers(s Spec) []LayerSpec {
	return []LayerSpec{
		NewLayer("conv1", "conv2d", keys{"out": s.Channels[0], "kernel": 5}),
		NewLayer("", "relu", nil),
		NewLayer("", "maxpool2d", keys{"kernel": 2}),
		NewLayer("conv2", "conv2d", keys{"out": s.Channels[1], "kernel": 5}),
		NewLayer("", "relu", nil),
		NewLayer("", "maxpool2d", keys{"kernel": 2}),
		NewLayer("", "flatten", nil),
		NewLayer("fc1", "linear", keys{"out": s.Hidden[0]}),
		NewLayer("", "relu", nil),
		NewLayer("fc2", "linear", keys{"out": s.Hidden[1]}),
		NewLayer("", "relu", nil),
		NewLayer("fc3", "linear", keys{"out": s.Classes}),
	}
}

// resnetLayers is the CIFAR-style ResNet of He et al. (2016) with
// torchvision's names: a 3x3 stem without max pooling, three stages of n
// BasicBlocks at widths w, 2w, 4w (stride 2 entering stages 2 and 3, with a
// 1x1 convolution and batch norm on the shortcut), global average pooling and
// a linear classifier.
func resnetLayers(s Spec) []LayerSpec {
	n := (s.Depth - 2) / 6
	conv3 := func(name string, out, stride int, from ...string) LayerSpec {
		return NewLayer(name, "conv2d", keys{"out": out, "kernel": 3, "stride": stride, "padding": 1, "bias": false}, from...)
	}
	out := []LayerSpec{
		conv3("conv1", s.Width, 1),
		NewLayer("bn1", "batchnorm2d", nil),
		NewLayer("relu1", "relu", nil),
	}
	prev, width := "relu1", s.Width
	for stage := 1; stage <= 3; stage++ {
		w := s.Width << (stage - 1)
		for b := 0; b < n; b++ {
			p := fmt.Sprintf("layer%d.%d", stage, b)
			stride := 1
			if b == 0 && stage > 1 {
				stride = 2
			}
			// conv1 reads the block input, which is the previous layer: no
			// from, as the PyTorch reference expansion writes it.
			out = append(out,
				conv3(p+".conv1", w, stride),
				NewLayer(p+".bn1", "batchnorm2d", nil),
				NewLayer("", "relu", nil),
				conv3(p+".conv2", w, 1),
				NewLayer(p+".bn2", "batchnorm2d", nil),
			)
			shortcut := prev
			if stride != 1 || w != width {
				out = append(out,
					NewLayer(p+".downsample.0", "conv2d", keys{"out": w, "kernel": 1, "stride": stride, "bias": false}, prev),
					NewLayer(p+".downsample.1", "batchnorm2d", nil),
				)
				shortcut = p + ".downsample.1"
			}
			out = append(out,
				NewLayer(p+".add", "add", nil, p+".bn2", shortcut),
				NewLayer(p+".relu2", "relu", nil),
			)
			prev, width = p+".relu2", w
		}
	}
	return append(out,
		NewLayer("", "adaptive_avgpool2d", nil),
		NewLayer("", "flatten", nil),
		NewLayer("fc", "linear", keys{"out": s.Classes}),
	)
}

// lstmLayers is a sequence classifier: an LSTM over the steps, its last
// step's output, and a linear layer.
func lstmLayers(s Spec) []LayerSpec {
	return []LayerSpec{
		NewLayer("lstm", "lstm", keys{"hidden": s.Hidden[0], "num_layers": s.NumLayers}),
		NewLayer("", "last", nil),
		NewLayer("fc", "linear", keys{"out": s.Classes}),
	}
}
