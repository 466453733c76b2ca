package quantize

import (
	"fmt"
	"math"
	"slices"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/nn"
)

// foldable lists the batch norms that can fold into the named convolutions:
// a batchnorm2d that reads a convolution which nothing else reads. It maps
// each batch norm's name to its convolution's.
func foldable(g *arch.Graph, convs []string) map[string]string {
	out := map[string]string{}
	for _, name := range convs {
		n := g.Node(name)
		if n == nil || n.Type != "conv2d" {
			continue
		}
		cs := g.Consumers(n.Index)
		if len(cs) != 1 || cs[0].Type != "batchnorm2d" || cs[0].Name == "" || !slices.Equal(cs[0].Inputs, []int{n.Index}) {
			continue
		}
		out[cs[0].Name] = name
	}
	return out
}

// FoldArch is the architecture after folding the batch norms that follow
// these convolutions: each batch norm leaves the layer list, its convolution
// gains a bias, and layers that read the batch norm read the convolution. A
// preset becomes an explicit layer list; an architecture with nothing to fold
// is returned as it is. It also returns the folded pairs (batch norm name to
// convolution name).
func FoldArch(spec arch.Spec, convs []string) (arch.Spec, map[string]string, error) {
	s := spec.Normalized()
	g, err := s.Graph()
	if err != nil {
		return s, nil, err
	}
	pairs := foldable(g, convs)
	if len(pairs) == 0 {
		return s, pairs, nil
	}
	list, err := s.List()
	if err != nil {
		return s, nil, err
	}
	gainsBias := map[string]bool{}
	for _, conv := range pairs {
		gainsBias[conv] = true
	}
	out := arch.Spec{Input: s.InputShape(), Classes: s.Classes}
	for i, l := range list {
		if _, gone := pairs[l.Name]; gone {
			continue
		}
		if l.Name != "" && gainsBias[l.Name] {
			if l, err = arch.SetKeys(l, map[string]any{"bias": true}); err != nil {
				return s, nil, fmt.Errorf("layer %s: %w", l.Name, err)
			}
		}
		from := slices.Clone(l.From)
		for k, f := range from {
			if conv, ok := pairs[f]; ok {
				from[k] = conv
			}
		}
		// A layer that read the batch norm as the previous layer now names
		// the convolution, unless the convolution comes right before it.
		if len(from) == 0 && i > 0 {
			if conv, ok := pairs[list[i-1].Name]; ok && (i < 2 || list[i-2].Name != conv) {
				from = []string{conv}
			}
		}
		l.From = from
		out.Layers = append(out.Layers, l)
	}
	if _, err := out.Graph(); err != nil {
		return s, nil, fmt.Errorf("folding batch norms: the new network does not build: %w", err)
	}
	return out, pairs, nil
}

// FoldBatchNorms folds each batch norm that directly follows one of the
// convolutions into it, as torch.ao.quantization.fuse_modules does before
// quantizing (fuse_conv_bn_weights, in float32):
//
//	w' = w · (γ · rsqrt(var + ε))        per output channel
//	b' = (b − mean) · rsqrt(var + ε) · γ + β
//
// with the running statistics, so the folded convolution computes what the
// pair computes in eval mode (to float32 rounding). The batch norms leave the
// model (FoldArch). It returns the folded pairs, batch norm to convolution.
func FoldBatchNorms(m *model.Model, convs []string) (map[string]string, error) {
	spec, pairs, err := FoldArch(m.Spec, convs)
	if err != nil || len(pairs) == 0 {
		return pairs, err
	}
	var layers []*model.Layer
	for _, l := range m.Layers {
		conv, gone := pairs[l.Name]
		if !gone {
			layers = append(layers, l)
			continue
		}
		c := m.Layer(conv)
		if c.Rank > 0 {
			return nil, fmt.Errorf("layer %s is factored (lowrank): its batch norm %s cannot fold into it; quantize before lowrank, or set keep_batchnorm", conv, l.Name)
		}
		foldInto(c, l)
	}
	m.Layers = layers
	if err := m.SetSpec(spec); err != nil {
		return nil, err
	}
	return pairs, nil
}

// foldInto folds batch norm bn into convolution c, in float32 with torch's
// order of operations; each product is rounded on its own (no fused
// multiply-add), as PyTorch's CPU kernels compute them.
func foldInto(c, bn *model.Layer) {
	get := func(set []*model.Weight, suffix string) []float32 {
		for _, w := range set {
			if w.Name == bn.Name+"."+suffix {
				return w.Data
			}
		}
		return nil
	}
	mean, variance := get(bn.Buffers, "running_mean"), get(bn.Buffers, "running_var")
	gamma, beta := get(bn.Params, "weight"), get(bn.Params, "bias")
	eps := float32(bn.Config.(*nn.BatchNorm).Eps)
	w := c.Weights[0]
	out := w.Shape[0]
	per := len(w.Data) / out
	bias := c.Bias()
	if bias == nil {
		bias = &model.Weight{Name: c.Name + ".bias", Shape: []int{out}, Data: make([]float32, out)}
		c.Params = append(c.Params, bias)
	}
	for o := 0; o < out; o++ {
		g, b := float32(1), float32(0)
		if gamma != nil {
			g, b = gamma[o], beta[o]
		}
		rsqrt := 1 / float32(math.Sqrt(float64(variance[o]+eps)))
		scale := float32(g * rsqrt)
		for i := o * per; i < (o+1)*per; i++ {
			w.Data[i] = float32(w.Data[i] * scale)
		}
		t := float32(bias.Data[o] - mean[o])
		t = float32(t * rsqrt)
		t = float32(t * g)
		bias.Data[o] = t + b
	}
	w.QParams = nil // the values moved off any grid: quantized afresh
}
