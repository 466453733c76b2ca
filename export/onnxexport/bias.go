package onnxexport

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/shrink-ml/shrink/model"
)

// DefaultBiasBudget is the number of activations per sample that
// onnxruntime's INT32 biases may move by one step of the next layer's input
// grid, in expectation, summed over the layers whose bias the default
// export leaves in the Conv or Gemm node (planBiases). The estimate counts
// every output; after a ReLU only the positive ones (about half) can move,
// so 1 is about 0.5 moved activations per sample: most samples (about 60%)
// see none, and their logits, the median among them, are shrink's to float
// rounding. Measured (docs/ONNX.md): ResNet-20 and ResNet-8 exports stay at
// float rounding (median |logit difference| 2.4e-7) up to 1.3 estimated,
// reach 1.7e-3 to 2.1e-3 at 3.6 to 3.8; the shipped MLPs spend about 0.05
// and LeNet-5 0.35, so they keep every integer kernel.
const DefaultBiasBudget = 1

// biasCost is one layer that onnxruntime would run as an integer kernel
// (QLinearConv, QGemm) with its bias rounded to INT32, and what the
// rounding costs.
type biasCost struct {
	l *model.Layer
	// flips is the expected number of the layer's output activations per
	// sample whose quantization on the next layer's input grid the rounded
	// bias moves by one step.
	flips float64
	macs  int64
}

// planBiases decides which statically quantized layers keep their bias in
// the Conv or Gemm node, where onnxruntime rounds it to INT32 in units of
// input scale x weight scale (its BiasQuantization transformer) and runs an
// integer kernel, and which add it with their own Add, exactly as shrink
// does, at the price of running in float.
//
// The rounding moves channel c's outputs by e_c = |b_c - S_c round(b_c/S_c)|
// (S_c = s_in |s_w[c]|, the folded scale and bias with a batch norm), at
// most S_c/2: tiny against the next layer's input scale s_out, but it
// carries an output across a rounding boundary of that grid with
// probability e_c/s_out, and every value of channel c the next layer reads
// gets that chance (a max pooling passes one of each window on). The expected moved activations per sample are then
// positions x sum_c e_c / s_out. One moved activation changes the logits
// by about s_out times the network's gain after it, enough to miss the
// 2e-3 median when most samples have one (a trained ResNet-20 at about 27
// per sample: median 0.012). So the default keeps biases in the node while the
// layers' total stays within Options.BiasBudget, spending it on the layers
// whose integer kernel saves the most multiply-accumulates per moved
// activation; FloatBias keeps every bias apart, IntBias every one it can
// in the node.
func (b *builder) planBiases() {
	b.overBudget = map[int]bool{}
	if b.opt.FloatBias {
		return
	}
	var costs []biasCost
	for _, l := range b.m.Layers {
		if b.structuralApart(l) {
			continue
		}
		c, ok := b.biasCost(l)
		if !ok {
			continue
		}
		costs = append(costs, c)
	}
	budget := b.opt.BiasBudget
	if budget == 0 {
		budget = DefaultBiasBudget
	}
	if b.opt.IntBias {
		// Every bias that INT32 holds; one past it has no rounding at all.
		budget = math.Inf(1)
	}
	// Cheapest moved activations per multiply-accumulate first; a layer
	// that does not fit leaves the budget to cheaper, smaller ones after it.
	order := slices.Clone(costs)
	slices.SortStableFunc(order, func(x, y biasCost) int {
		return cmp.Compare(x.flips/float64(max(x.macs, 1)), y.flips/float64(max(y.macs, 1)))
	})
	spent := 0.0
	for _, c := range order {
		if !math.IsInf(c.flips, 1) && spent+c.flips <= budget {
			spent += c.flips
		} else {
			b.overBudget[c.l.Index] = true
		}
	}
	var kept []string
	for _, c := range costs {
		if !b.overBudget[c.l.Index] {
			kept = append(kept, fmt.Sprintf("%s %.2g", c.l.Label(), c.flips))
			continue
		}
		if math.IsInf(c.flips, 1) {
			b.note("%s: bias kept apart (its own Add, exact; onnxruntime runs the layer in float): a channel's bias is past INT32's range in units of input scale x weight scale, which onnxruntime cannot round it to", c.l.Label())
			continue
		}
		b.note("%s: bias kept apart (its own Add, exact; onnxruntime runs the layer in float): rounded to INT32 for an integer kernel it would move about %.2g activations per sample by a step of the next layer's input grid, over the budget of %.2g (--int-bias keeps it in the node)", c.l.Label(), c.flips, budget)
	}
	if len(kept) > 0 && !b.opt.IntBias {
		b.note("INT32 biases for onnxruntime's integer kernels (expected activations moved per sample, %.2g of the budget of %.2g): %s", spent, budget, strings.Join(kept, ", "))
	}
}

// structuralApart reports whether a statically quantized layer's bias is
// apart whatever the budget: where onnxruntime would not run an integer
// kernel anyway (its output feeds a residual add or the logits, not the
// next layer's 8-bit static quantization alone) or where the grids are
// narrower than 8 bits, whose coarse scales make the rounding visible
// (fully trained QAT models with 4-bit weights moved their median logit by
// 0.017).
func (b *builder) structuralApart(l *model.Layer) bool {
	if l.Input == nil || l.Input.Mode != "static" {
		return false
	}
	return l.Input.Spec.Bits < 8 || l.Quant != nil && l.Quant.Bits < 8 || !b.feedsQuantized(l)
}

// feedsQuantized reports whether onnxruntime can fuse layer l into an
// integer kernel (consumerQuantized).
func (b *builder) feedsQuantized(l *model.Layer) bool {
	c, _ := b.consumerQuantized(l)
	return c != nil
}

// biasCost estimates what rounding layer l's bias to INT32 costs (planBiases);
// ok is false when onnxruntime has no bias to round: none, a factored
// layer, whose second factor reads the first's float output, or a MatMul.
// (An uncalibrated static layer has none either; the build says so.)
func (b *builder) biasCost(l *model.Layer) (biasCost, bool) {
	if l.Input == nil || l.Input.Mode != "static" || len(l.Input.Params.Scale) != 1 || l.Quant == nil || len(l.Weights) != 1 ||
		l.Type == "linear" && len(l.In[0]) > 1 { // MatMul on sequences adds its bias apart anyway
		return biasCost{}, false
	}
	fold := b.foldOf(l)
	bias, _ := biasValues(l, fold)
	next, positions := b.consumerQuantized(l)
	if bias == nil || next == nil {
		return biasCost{}, false
	}
	qw := quantized(l, l.Weights[0], fold)
	sIn := l.Input.Params.Scale[0]
	sOut := float64(next.Input.Params.Scale[0])
	var sum float64
	for c, v := range bias {
		// onnxruntime multiplies the two FLOAT scales and divides the bias by
		// the product.
		s := math.Abs(float64(sIn * qw.scale[min(c, len(qw.scale)-1)]))
		if s == 0 {
			continue
		}
		q := math.RoundToEven(float64(v) / s)
		if q > math.MaxInt32 || q < math.MinInt32 {
			// Past INT32: onnxruntime's Cast has no defined result (x86
			// gives -2^31), so the bias in the node would be lost, not
			// rounded; it has to stay apart.
			sum = math.Inf(1)
			break
		}
		sum += math.Abs(float64(v) - s*q)
	}
	return biasCost{l: l, flips: float64(positions) * sum / sOut, macs: l.MACs()}, true
}
