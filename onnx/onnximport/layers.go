package onnximport

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/onnx"
)

// gemm is nn.Linear on [N, F]: Gemm(x, W, b) with alpha = beta = 1,
// transA = 0; W is [out, in] with transB (PyTorch's layout) or [in, out].
func (im *importer) gemm(n *onnx.Node, ins []*val) error {
	a, err := plain(n, ins)
	if err != nil {
		return err
	}
	if len(a.shape) != 1 {
		return fmt.Errorf("Gemm on one sample's shape %v: a linear layer here reads vectors (flatten first)", a.shape)
	}
	if attrFloat(n, "alpha", 1) != 1 || attrFloat(n, "beta", 1) != 1 || attrInt(n, "transA", 0) != 0 {
		return errors.New("alpha, beta or transA other than 1, 1, 0: not what nn.Linear exports")
	}
	w, wv, err := constFloats(n, ins, 1, "weight")
	if err != nil {
		return err
	}
	if len(w.Dims) != 2 {
		return fmt.Errorf("weight %s is %v, want a matrix", w.Name, w.Dims)
	}
	out, in := int(w.Dims[0]), int(w.Dims[1])
	if attrInt(n, "transB", 0) == 0 {
		in, out = out, in
		wv = transpose(wv, in, out)
	}
	ts := []checkpoint.Tensor{f32("weight", []int{out, in}, wv)}
	bias := false
	if len(ins) > 2 && ins[2] != nil {
		b, bv, err := constFloats(n, ins, 2, "bias")
		if err != nil {
			return err
		}
		if len(bv) != out {
			return fmt.Errorf("bias %s has %d values for %d outputs (a broadcast bias is not nn.Linear's)", b.Name, len(bv), out)
		}
		ts = append(ts, f32("bias", []int{out}, bv))
		bias = true
	}
	name, err := im.weightLayerName(n, w.Name)
	if err != nil {
		return err
	}
	_, err = im.addLayer(n, "linear", name, map[string]any{"out": out, "bias": bias}, []*act{a}, ts)
	return err
}

// matmul is nn.Linear on the last dimension as MatMul(x, W [in, out]);
// an Add of a bias right after becomes the layer's bias (see add).
func (im *importer) matmul(n *onnx.Node, ins []*val) error {
	a, err := plain(n, ins)
	if err != nil {
		return err
	}
	w, wv, err := constFloats(n, ins, 1, "weight")
	if err != nil {
		return err
	}
	if len(w.Dims) != 2 || int(w.Dims[0]) != a.shape[len(a.shape)-1] {
		return fmt.Errorf("weight %s is %v for inputs of shape %v: want [in, out] with in = the last dimension", w.Name, w.Dims, a.shape)
	}
	in, out := int(w.Dims[0]), int(w.Dims[1])
	name := ""
	if p, ok := cutWeight(w.Name); ok {
		name = p
	} else if name = modulePath(n.Name); name == "" {
		return fmt.Errorf("neither its weight %q nor the node's name gives a module path", w.Name)
	}
	ts := []checkpoint.Tensor{f32("weight", []int{out, in}, transpose(wv, in, out))}
	_, err = im.addLayer(n, "linear", name, map[string]any{"out": out, "bias": false}, []*act{a}, ts)
	return err
}

func cutWeight(s string) (string, bool) {
	p, ok := cutSuffix(s, ".weight")
	return p, ok && modulePathLike(p)
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return "", false
}

// transpose turns a row-major [rows, cols] matrix into [cols, rows].
func transpose(v []float32, rows, cols int) []float32 {
	out := make([]float32, len(v))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			out[c*rows+r] = v[r*cols+c]
		}
	}
	return out
}

// add is a residual connection (two activations) or the bias of the
// linear layer a MatMul just made.
func (im *importer) add(n *onnx.Node, ins []*val) error {
	if len(ins) != 2 || ins[0] == nil || ins[1] == nil {
		return errors.New("Add takes two inputs")
	}
	if ins[0].a != nil && ins[1].a != nil && ins[0].part == "" && ins[1].part == "" {
		for _, v := range ins {
			if v.part != "" || v.a.view != "" {
				return errors.New("it adds values that are not layer outputs shrink has")
			}
		}
		_, err := im.addLayer(n, "add", "", nil, []*act{ins[0].a, ins[1].a}, nil)
		return err
	}
	if ins[0].part != "" || ins[1].part != "" {
		return im.geluPart(n, ins)
	}
	x, c := ins[0], ins[1]
	if x.a == nil {
		x, c = c, x
	}
	if x.part != "" || x.a.view != "" || c.c == nil || x.a.from < 0 {
		return errors.New("it adds a constant to a value that is not a MatMul's: shrink has no layer for that")
	}
	l := im.layers[x.a.from]
	if l.typ != "linear" || l.node.OpType != "MatMul" || l.keys["bias"] != false || x.a.from != len(im.layers)-1 || im.consumers[l.node.Outputs[0]] != 1 {
		return errors.New("it adds a constant to a value that is not a MatMul's: shrink has no layer for that")
	}
	bv, err := floats(c.c)
	if err != nil {
		return err
	}
	out := l.keys["out"].(int)
	if len(bv) != out {
		return fmt.Errorf("bias %s has %d values for %d outputs", c.c.Name, len(bv), out)
	}
	l.keys["bias"] = true
	l.tensors = append(l.tensors, f32(l.name+".bias", []int{out}, bv))
	if p, ok := cutSuffix(c.c.Name, ".bias"); ok && modulePathLike(p) && p != l.name && !im.names[p] {
		// An anonymous transposed weight: the bias carries the module's name.
		delete(im.names, l.name)
		delete(im.layerOf, l.name)
		for i := range l.tensors {
			l.tensors[i].Name = p + l.tensors[i].Name[len(l.name):]
		}
		l.name = p
		im.names[p] = true
		im.layerOf[p] = x.a.from
	}
	im.set(n, 0, &val{a: x.a})
	return nil
}

// conv is nn.Conv2d.
func (im *importer) conv(n *onnx.Node, ins []*val) error {
	a, err := plain(n, ins)
	if err != nil {
		return err
	}
	if len(a.shape) != 3 {
		return fmt.Errorf("Conv on one sample's shape %v: shrink convolves images [C, H, W]", a.shape)
	}
	w, wv, err := constFloats(n, ins, 1, "weight")
	if err != nil {
		return err
	}
	if len(w.Dims) != 4 {
		return fmt.Errorf("weight %s is %v: a 2-D convolution's is [out, in/groups, kh, kw]", w.Name, w.Dims)
	}
	pads, err := symmetricPads(n)
	if err != nil {
		return err
	}
	strides := attrInts(n, "strides", 1, 1)
	dil := attrInts(n, "dilations", 1, 1)
	if ks := attrInts(n, "kernel_shape", w.Dims[2], w.Dims[3]); ks[0] != w.Dims[2] || ks[1] != w.Dims[3] {
		return fmt.Errorf("kernel_shape %v differs from the weight's %v", ks, w.Dims)
	}
	out := int(w.Dims[0])
	keys := map[string]any{"out": out, "kernel": pair(w.Dims[2:]), "stride": pair(strides), "padding": pair(pads),
		"dilation": pair(dil), "groups": int(attrInt(n, "group", 1)), "bias": false}
	ts := []checkpoint.Tensor{f32("weight", intsOf(w.Dims), wv)}
	if len(ins) > 2 && ins[2] != nil {
		b, bv, err := constFloats(n, ins, 2, "bias")
		if err != nil {
			return err
		}
		ts = append(ts, f32("bias", []int{len(bv)}, bv))
		keys["bias"] = true
		if _, ok := cutSuffix(b.Name, ".bias"); !ok && w.Name != "" {
			if _, named := cutWeight(w.Name); !named {
				im.note("%s: a convolution whose weight and bias the exporter computed (a batch norm folded into it, with do_constant_folding): imported as it is", nodeLabel(n))
			}
		}
	}
	name, err := im.weightLayerName(n, w.Name)
	if err != nil {
		return err
	}
	_, err = im.addLayer(n, "conv2d", name, keys, []*act{a}, ts)
	return err
}

// batchNorm is nn.BatchNorm2d on images, nn.BatchNorm1d on vectors and
// [C, L] sequences, in inference mode.
func (im *importer) batchNorm(n *onnx.Node, ins []*val) error {
	a, err := plain(n, ins)
	if err != nil {
		return err
	}
	if attrInt(n, "training_mode", 0) != 0 || len(n.Outputs) > 1 && n.Outputs[1] != "" {
		return errors.New("a batch norm in training mode: export the model in eval mode")
	}
	typ := "batchnorm1d"
	if len(a.shape) == 3 {
		typ = "batchnorm2d"
	}
	names := []string{"weight", "bias", "running_mean", "running_var"}
	var ts []checkpoint.Tensor
	scaleName := ""
	for i, s := range names {
		t, v, err := constFloats(n, ins, i+1, s)
		if err != nil {
			return err
		}
		ts = append(ts, f32(s, []int{len(v)}, v))
		if i == 0 {
			scaleName = t.Name
		}
	}
	ts = append(ts, checkpoint.I64("num_batches_tracked", []int{}, []int64{0}))
	name, err := im.weightLayerName(n, scaleName)
	if err != nil {
		return err
	}
	keys := map[string]any{"eps": decimal(attrFloat(n, "epsilon", 1e-5))}
	if m, ok := n.Attr("momentum"); ok {
		// ONNX's momentum weighs the running statistics; PyTorch's the batch's.
		keys["momentum"] = decimal(1 - m.Float)
	}
	_, err = im.addLayer(n, typ, name, keys, []*act{a}, ts)
	return err
}

// clip is nn.ReLU6 (Clip to [0, 6]) or nn.ReLU (Clip to [0, inf)).
func (im *importer) clip(n *onnx.Node, ins []*val) error {
	lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
	if a, ok := n.Attr("min"); ok {
		lo = a.Float
	}
	if a, ok := n.Attr("max"); ok {
		hi = a.Float
	}
	for i, p := range []*float32{&lo, &hi} {
		if len(ins) > i+1 && ins[i+1] != nil {
			t, err := constInput(n, ins, i+1, "bound")
			if err != nil {
				return err
			}
			v, err := floats(t)
			if err != nil || len(v) != 1 {
				return fmt.Errorf("bound %s is not a scalar", t.Name)
			}
			*p = v[0]
		}
	}
	switch {
	case lo == 0 && hi == 6:
		return im.activation(n, ins[:1], "relu6")
	case lo == 0 && !isFinite(hi) && hi > 0:
		return im.activation(n, ins[:1], "relu")
	}
	return fmt.Errorf("Clip to [%g, %g]: shrink has ReLU6 (Clip to [0, 6]) and ReLU", lo, hi)
}

// pool is nn.MaxPool2d or nn.AvgPool2d (count_include_pad) in floor mode.
func (im *importer) pool(n *onnx.Node, ins []*val) error {
	a, err := plain(n, ins)
	if err != nil {
		return err
	}
	if err := im.only(n, 0); err != nil {
		return err
	}
	ks := attrInts(n, "kernel_shape")
	if len(ks) != 2 {
		return fmt.Errorf("kernel_shape %v: shrink pools 2-D windows", ks)
	}
	if attrInt(n, "ceil_mode", 0) != 0 {
		return errors.New("ceil_mode: shrink pools in floor mode (PyTorch's default)")
	}
	if d := attrInts(n, "dilations", 1, 1); d[0] != 1 || d[1] != 1 {
		return fmt.Errorf("dilations %v: shrink's pooling is not dilated", d)
	}
	if attrInt(n, "storage_order", 0) != 0 {
		return errors.New("storage_order 1 (column-major indices)")
	}
	pads, err := symmetricPads(n)
	if err != nil {
		return err
	}
	typ := "maxpool2d"
	if n.OpType == "AveragePool" {
		typ = "avgpool2d"
		if (pads[0] > 0 || pads[1] > 0) && attrInt(n, "count_include_pad", 0) == 0 {
			return errors.New("padding left out of the average (count_include_pad=False): shrink's avgpool2d counts it, as PyTorch's default")
		}
	}
	keys := map[string]any{"kernel": pair(ks), "stride": pair(attrInts(n, "strides", 1, 1)), "padding": pair(pads)}
	_, err = im.addLayer(n, typ, "", keys, []*act{a}, nil)
	return err
}

// flatten is nn.Flatten (axis 1); on vectors it changes nothing.
func (im *importer) flatten(n *onnx.Node, ins []*val) error {
	a, err := plain(n, ins)
	if err != nil {
		return err
	}
	if attrInt(n, "axis", 1) != 1 {
		return fmt.Errorf("Flatten with axis %d: shrink flattens each sample (axis 1)", attrInt(n, "axis", 1))
	}
	return im.toFlat(n, a)
}

// toFlat adds a flatten layer unless the samples are vectors already.
func (im *importer) toFlat(n *onnx.Node, a *act) error {
	if len(a.shape) == 1 {
		im.set(n, 0, &val{a: a})
		return nil
	}
	_, err := im.addLayer(n, "flatten", "", nil, []*act{a}, nil)
	return err
}

// reshape is flatten when the target is [batch, one sample's size] (as
// x.view(x.size(0), -1) and nn.Flatten export), or nothing when it keeps
// the shape.
func (im *importer) reshape(n *onnx.Node, ins []*val) error {
	a, err := plain(n, ins)
	if err != nil {
		return err
	}
	if len(ins) < 2 || ins[1] == nil {
		return errors.New("no target shape")
	}
	target, err := symOf(ins[1])
	if err != nil {
		return fmt.Errorf("target shape: %v", err)
	}
	full := append([]sdim{{batch: true}}, dimsOf(a.shape)...)
	size := int64(a.shape.Size())
	out := make([]sdim, len(target))
	infer := -1
	for i, d := range target {
		switch {
		case d.batch:
			out[i] = d
		case d.n == 0 && attrInt(n, "allowzero", 0) == 0 && i < len(full):
			out[i] = full[i]
		case d.n == -1 && infer < 0:
			infer = i
		case d.n > 0:
			out[i] = d
		default:
			return fmt.Errorf("target shape %s cannot be read", symString(target))
		}
	}
	if len(out) == 0 || !out[0].batch && infer != 0 {
		return fmt.Errorf("target shape %s does not keep the batch dimension first", symString(target))
	}
	known := int64(1)
	for i, d := range out {
		if i > 0 && i != infer {
			known *= d.n
		}
	}
	if infer > 0 {
		if known == 0 || size%known != 0 {
			return fmt.Errorf("target shape %s does not fit one sample's %d values", symString(target), size)
		}
		out[infer] = sdim{n: size / known}
	} else if infer == 0 {
		if known != size {
			return fmt.Errorf("target shape %s does not keep the batch size", symString(target))
		}
	} else if known != size {
		return fmt.Errorf("target shape %s does not fit one sample's %d values", symString(target), size)
	}
	rest := arch.Shape{}
	for _, d := range out[1:] {
		rest = append(rest, int(d.n))
	}
	switch {
	case slices.Equal(rest, a.shape):
		im.set(n, 0, &val{a: a})
		return nil
	case len(rest) == 1:
		return im.toFlat(n, a)
	}
	return fmt.Errorf("a reshape of %v to %v: shrink reshapes samples to flat vectors only", a.shape, rest)
}

// squeeze drops an LSTM output's direction axis (to time-major [T, N, H]),
// or flattens [C, 1, 1] images (x.squeeze() after global pooling).
func (im *importer) squeeze(n *onnx.Node, ins []*val) error {
	v := ins[0]
	axes, err := axesOf(n, ins)
	if err != nil {
		return err
	}
	if v.a != nil && v.a.view == "lstmY" {
		if !slices.Equal(axes, []int64{1}) {
			return fmt.Errorf("Squeeze of an LSTM's output on axes %v: shrink drops the direction axis (1)", axes)
		}
		im.set(n, 0, &val{a: &act{from: v.a.from, shape: v.a.shape, view: "tnf"}})
		return nil
	}
	a, err := plain(n, ins[:1])
	if err != nil {
		return err
	}
	if len(a.shape) == 3 && a.shape[1] == 1 && a.shape[2] == 1 {
		for _, x := range axes {
			if x != 2 && x != 3 && x != -1 && x != -2 {
				return fmt.Errorf("Squeeze on axes %v of [N, %d, 1, 1]", axes, a.shape[0])
			}
		}
		return im.toFlat(n, a)
	}
	return fmt.Errorf("Squeeze of one sample's shape %v on axes %v: shrink has no layer for that", a.shape, axes)
}

// axesOf reads Squeeze's or Unsqueeze's axes (an attribute before opset 13,
// an input since).
func axesOf(n *onnx.Node, ins []*val) ([]int64, error) {
	if a, ok := n.Attr("axes"); ok {
		return a.Ints, nil
	}
	if len(ins) > 1 && ins[1] != nil {
		if ins[1].c == nil {
			return nil, errors.New("axes that are not a constant")
		}
		return ints(ins[1].c)
	}
	return nil, nil
}

// transpose swaps a sequence's batch and time axes ([N, T, F] to
// [T, N, F] and back), as torch.onnx.export does around an LSTM with
// batch_first.
func (im *importer) transpose(n *onnx.Node, ins []*val) error {
	v := ins[0]
	perm := attrInts(n, "perm")
	if v.a == nil || v.part != "" || !slices.Equal(perm, []int64{1, 0, 2}) {
		return fmt.Errorf("Transpose with perm %v: shrink reads only the batch-first/time-major swap [1, 0, 2] of sequences around an LSTM", perm)
	}
	switch {
	case v.a.view == "" && len(v.a.shape) == 2:
		im.set(n, 0, &val{a: &act{from: v.a.from, shape: v.a.shape, view: "tnf"}})
	case v.a.view == "tnf":
		im.set(n, 0, &val{a: &act{from: v.a.from, shape: v.a.shape}})
	default:
		return fmt.Errorf("Transpose of one sample's shape %v: shrink swaps batch and time of sequences [T, F] only", v.a.shape)
	}
	return nil
}

// concat is torch.cat on the channels of images or the features of vectors
// and sequences.
func (im *importer) concat(n *onnx.Node, ins []*val) error {
	if h, ok := stackedStates(ins); ok && attrInt(n, "axis", 0) == 0 {
		im.set(n, 0, &val{a: h})
		return nil
	}
	var acts []*act
	for i, v := range ins {
		if v == nil || v.a == nil || v.part != "" || v.a.view != "" {
			return fmt.Errorf("input %d is not a layer's output: shrink concatenates layer outputs only", i)
		}
		acts = append(acts, v.a)
	}
	rank := len(acts[0].shape) + 1
	axis := attrInt(n, "axis", 0)
	if axis < 0 {
		axis += int64(rank)
	}
	want := int64(1)
	if rank == 3 {
		want = 2
	}
	if axis != want {
		return fmt.Errorf("Concat on axis %d of [N, %v]: shrink's concat joins the channels of images (axis 1) or the features of vectors and sequences (the last axis)", axis, acts[0].shape)
	}
	_, err := im.addLayer(n, "concat", "", nil, acts, nil)
	return err
}

// layerNorm is nn.LayerNorm over the last dimension.
func (im *importer) layerNorm(n *onnx.Node, ins []*val) error {
	a, err := plain(n, ins)
	if err != nil {
		return err
	}
	if axis := attrInt(n, "axis", -1); axis != -1 && axis != int64(len(a.shape)) {
		return fmt.Errorf("LayerNormalization over axes from %d: shrink's layernorm normalizes the last dimension", axis)
	}
	if err := im.only(n, 0); err != nil {
		return err
	}
	d := a.shape[len(a.shape)-1]
	w, wv, err := constFloats(n, ins, 1, "scale")
	if err != nil {
		return err
	}
	bv := make([]float32, d)
	if len(ins) > 2 && ins[2] != nil {
		b, err := constInput(n, ins, 2, "bias")
		if err != nil {
			return err
		}
		if bv, err = floats(b); err != nil {
			return err
		}
	}
	name, err := im.weightLayerName(n, w.Name)
	if err != nil {
		return err
	}
	ts := []checkpoint.Tensor{f32("weight", []int{len(wv)}, wv), f32("bias", []int{len(bv)}, bv)}
	_, err = im.addLayer(n, "layernorm", name, map[string]any{"eps": decimal(attrFloat(n, "epsilon", 1e-5))}, []*act{a}, ts)
	return err
}

// gather is nn.Embedding (rows of an initializer picked by the input), or
// the last step of a sequence: out[:, -1, :], or h_n[-1] of an LSTM.
func (im *importer) gather(n *onnx.Node, ins []*val) error {
	data, idx := ins[0], ins[1]
	axis := attrInt(n, "axis", 0)
	if data.c != nil && idx.a != nil {
		return im.embedding(n, data.c, idx, axis)
	}
	if data.a == nil || idx.c == nil {
		return errors.New("Gather of an activation by indices that are not constant")
	}
	is, err := ints(idx.c)
	if err != nil || len(is) != 1 || len(idx.c.Dims) != 0 {
		return errors.New("Gather by anything but one scalar index")
	}
	i := is[0]
	a := data.a
	switch {
	case a.view == "lstmH" && axis == 0 && (i == -1 || i == int64(a.layers-1)) && a.k == im.layers[a.from].lstmK-1:
		// h_n[-1]: the last layer's state after the last step, which is
		// its output's last step.
		_, err := im.addLayer(n, "last", "", nil, []*act{{from: a.from, shape: im.layers[a.from].out}}, nil)
		return err
	case a.view == "" && data.part == "" && len(a.shape) == 2 && axis == 1 && (i == -1 || i == int64(a.shape[0]-1)):
		_, err := im.addLayer(n, "last", "", nil, []*act{a}, nil)
		return err
	}
	return fmt.Errorf("Gather of index %d on axis %d of this value: shrink reads the last step of a sequence (out[:, -1, :], h_n[-1]) only", i, axis)
}

// lstm is nn.LSTM(batch_first=True) fed time-major by a Transpose; a
// second LSTM node of the same module reading the first's output is its
// next layer (num_layers). Weights restack ONNX's gates (i, o, f, c) in
// PyTorch's order (i, f, g, o).
func (im *importer) lstm(n *onnx.Node, ins []*val) error {
	x := ins[0]
	if x == nil || x.a == nil || x.a.view != "tnf" {
		return errors.New("the LSTM's input is not a time-major sequence (torch.onnx.export transposes a batch_first input with Transpose [1, 0, 2])")
	}
	if d, ok := n.Attr("direction"); ok && d.String != "forward" {
		return fmt.Errorf("direction %s: shrink's lstm runs forward only", d.String)
	}
	if attrInt(n, "layout", 0) != 0 || attrInt(n, "input_forget", 0) != 0 {
		return errors.New("layout or input_forget other than 0")
	}
	if _, ok := n.Attr("clip"); ok {
		return errors.New("cell clipping: PyTorch's LSTM does not clip")
	}
	if a, ok := n.Attr("activations"); ok && !slices.Equal(a.Strings, []string{"Sigmoid", "Tanh", "Tanh"}) {
		return fmt.Errorf("activations %v: PyTorch's are Sigmoid, Tanh, Tanh", a.Strings)
	}
	if len(ins) > 4 && ins[4] != nil {
		return errors.New("sequence_lens: shrink runs every sequence to its full length")
	}
	for i := 5; i < len(ins) && i < 7; i++ {
		if v := ins[i]; v != nil && v.zeros == nil && !(v.c != nil && allZero(v.c)) {
			return fmt.Errorf("initial state %s is not zeros: shrink's lstm starts from zeros", n.Inputs[i])
		}
	}
	if len(n.Outputs) > 2 && n.Outputs[2] != "" && im.consumers[n.Outputs[2]] > 0 {
		return errors.New("its cell state Y_c is used: shrink's lstm outputs the hidden states")
	}
	hidden := int(attrInt(n, "hidden_size", 0))
	w, err := constInput(n, ins, 1, "W")
	if err != nil {
		return err
	}
	r, err := constInput(n, ins, 2, "R")
	if err != nil {
		return err
	}
	wv, err := floats(w)
	if err != nil {
		return err
	}
	rv, err := floats(r)
	if err != nil {
		return err
	}
	in := x.a.shape[1]
	if hidden < 1 || !slices.Equal(w.Dims, []int64{1, int64(4 * hidden), int64(in)}) || !slices.Equal(r.Dims, []int64{1, int64(4 * hidden), int64(hidden)}) {
		return fmt.Errorf("W %v and R %v do not fit hidden_size %d on %d inputs", w.Dims, r.Dims, hidden, in)
	}
	var bv []float32
	if len(ins) > 3 && ins[3] != nil {
		b, err := constInput(n, ins, 3, "B")
		if err != nil {
			return err
		}
		if bv, err = floats(b); err != nil {
			return err
		}
		if len(bv) != 8*hidden {
			return fmt.Errorf("B %s is %v, want [1, %d]", b.Name, b.Dims, 8*hidden)
		}
	}
	// A stacked layer: the previous LSTM layer's whole output feeds this
	// node, and both come from one module.
	if prev := x.a.from; prev >= 0 && prev == len(im.layers)-1 && im.layers[prev].typ == "lstm" &&
		modulePath(n.Name) == modulePath(im.layers[prev].node.Name) && im.layers[prev].keys["hidden"] == hidden {
		l := im.layers[prev]
		k := l.lstmK
		if (bv != nil) != (l.keys["bias"] == true) {
			return errors.New("a stacked LSTM layer with a bias where the layer below has none (or the reverse)")
		}
		l.lstmK++
		l.keys["num_layers"] = l.lstmK
		l.tensors = append(l.tensors, lstmTensors(l.name+".", k, wv, rv, bv, in, hidden)...)
		im.layerY(n, l, prev)
		return nil
	}
	name := ""
	if p, ok := cutSuffix(w.Name, ".weight_ih_l0"); ok && modulePathLike(p) {
		name = p
	} else if name = modulePath(n.Name); name == "" {
		return fmt.Errorf("neither its W %q nor the node's name gives a module path", w.Name)
	}
	keys := map[string]any{"hidden": hidden, "num_layers": 1, "bias": bv != nil}
	a, err := im.addLayer(n, "lstm", name, keys, []*act{{from: x.a.from, shape: x.a.shape}}, lstmTensors("", 0, wv, rv, bv, in, hidden))
	if err != nil {
		return err
	}
	l := im.layers[a.from]
	l.lstmK = 1
	im.layerY(n, l, a.from)
	return nil
}

// layerY records an LSTM layer's outputs Y [T, 1, N, H] and Y_h.
func (im *importer) layerY(n *onnx.Node, l *layer, i int) {
	shape := arch.Shape{l.out[0], l.keys["hidden"].(int)}
	im.set(n, 0, &val{a: &act{from: i, shape: shape, view: "lstmY"}})
	im.set(n, 1, &val{a: &act{from: i, shape: arch.Shape{shape[1]}, view: "lstmH", layers: 1, k: l.lstmK - 1}})
}

// lstmTensors restacks one ONNX LSTM layer's W, R and B in PyTorch's gate
// order as weight_ih_lK, weight_hh_lK, bias_ih_lK, bias_hh_lK.
func lstmTensors(prefix string, k int, w, r, b []float32, in, h int) []checkpoint.Tensor {
	// ONNX stacks gates i, o, f, c; PyTorch i, f, g (= c), o.
	order := []int{0, 2, 3, 1}
	restack := func(v []float32, cols int) []float32 {
		out := make([]float32, 0, len(v))
		for _, g := range order {
			out = append(out, v[g*h*cols:(g+1)*h*cols]...)
		}
		return out
	}
	s := fmt.Sprintf("_l%d", k)
	ts := []checkpoint.Tensor{
		f32(prefix+"weight_ih"+s, []int{4 * h, in}, restack(w, in)),
		f32(prefix+"weight_hh"+s, []int{4 * h, h}, restack(r, h)),
	}
	if b != nil {
		ts = append(ts,
			f32(prefix+"bias_ih"+s, []int{4 * h}, restack(b[:4*h], 1)),
			f32(prefix+"bias_hh"+s, []int{4 * h}, restack(b[4*h:], 1)))
	}
	return ts
}

func allZero(t *onnx.Tensor) bool {
	v, err := floats(t)
	if err != nil {
		return false
	}
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

// shape is Shape of an activation: [batch, ...one sample's shape] (in the
// activation's layout), symbolic in the batch size.
func (im *importer) shape(n *onnx.Node, ins []*val) error {
	a := ins[0].a
	var full []sdim
	switch a.view {
	case "":
		full = append([]sdim{{batch: true}}, dimsOf(a.shape)...)
	case "tnf":
		full = []sdim{{n: int64(a.shape[0])}, {batch: true}, {n: int64(a.shape[1])}}
	default:
		return fmt.Errorf("Shape of an LSTM's output (layout %s)", a.view)
	}
	start, end := attrInt(n, "start", 0), attrInt(n, "end", int64(len(full)))
	start, end = clampAxis(start, len(full)), clampAxis(end, len(full))
	if start > end {
		start = end
	}
	im.set(n, 0, &val{sym: full[start:end]})
	return nil
}

func clampAxis(i int64, n int) int64 {
	if i < 0 {
		i += int64(n)
	}
	return min(max(i, 0), int64(n))
}

func dimsOf(s arch.Shape) []sdim {
	out := make([]sdim, len(s))
	for i, d := range s {
		out[i] = sdim{n: int64(d)}
	}
	return out
}

// stackedStates reads a Concat of a stacked LSTM's Y_h, layer by layer
// (h_n of nn.LSTM(num_layers=k)).
func stackedStates(ins []*val) (*act, bool) {
	var from int
	for i, v := range ins {
		if v == nil || v.a == nil || v.a.view != "lstmH" || v.a.layers != 1 || v.a.k != i || i > 0 && v.a.from != from {
			return nil, false
		}
		from = v.a.from
	}
	return &act{from: from, shape: ins[0].a.shape, view: "lstmH", layers: len(ins), k: len(ins) - 1}, true
}

// embedding is nn.Embedding: Gather of an initializer's rows [num, dim] by
// the model's token ids.
func (im *importer) embedding(n *onnx.Node, w *onnx.Tensor, idx *val, axis int64) error {
	a := idx.a
	if !a.ids || idx.part != "" || a.view != "" || a.from != arch.ModelInput || axis != 0 {
		return errors.New("a Gather of an initializer's rows by something other than the model's token ids (axis 0): an embedding reads the input")
	}
	wv, err := floats(w)
	if err != nil {
		return err
	}
	if len(w.Dims) != 2 {
		return fmt.Errorf("weight %s is %v, an embedding's is [num, dim]", w.Name, w.Dims)
	}
	name, err := im.weightLayerName(n, w.Name)
	if err != nil {
		return err
	}
	keys := map[string]any{"num": int(w.Dims[0]), "dim": int(w.Dims[1])}
	_, err = im.addLayer(n, "embedding", name, keys, []*act{{from: a.from, shape: a.shape}}, []checkpoint.Tensor{f32("weight", intsOf(w.Dims), wv)})
	return err
}
