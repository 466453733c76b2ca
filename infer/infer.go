// Package infer runs a shrink checkpoint from Go programs: load it once,
// then call Predict from any number of goroutines.
//
//	m, err := infer.Load("runs/quickstart/train/model.safetensors", infer.Options{})
//	logits, err := m.Predict(x, n) // x: n samples of m.InputSize() values
//
// # What runs
//
// The network is the one `shrink eval` measures, compiled once per batch
// size into a graph of fused ops (model.Build in eval mode) and kept: a
// call never rebuilds a graph, and a call with a batch size seen before
// allocates nothing beyond its result (none with PredictInto). Each layer
// runs on the fastest exact kernels its form allows:
//
//   - "int8": a dynamically quantized layer (linear, LSTM; symmetric weights
//     of at most 8 bits, reduce_range activations) on integer kernels
//     (internal/qgemm: AVX-512 VNNI, AVX2 or Go, exact int32 sums), as
//     PyTorch's quantized::linear_dynamic computes it; and a statically
//     quantized linear or convolution (8-bit inputs with calibrated
//     parameters; ungrouped, undilated convolutions), its exact integer
//     sums rescaled to float, as quantized::linear and quantized::conv2d
//     compute them (with float output); and a dynamically quantized linear
//     layer whose inputs span all 256 codes (not reduce_range), likewise.
//     A ReLU after an integer linear layer runs in its output pass;
//   - "sparse": a float linear layer whose weight density is below what
//     this machine's sparse kernels beat at that batch size (sparse.Worth,
//     from a measured sweep; see docs/PERFORMANCE.md) on internal/sparse
//     (a quantized layer that runs on integer kernels stays on them: the
//     dense int8 product beat the float sparse one on Deep Compression's
//     pruned and quantized layers too);
//   - "dense": everything else, in float32 (internal/gemm).
//
// A convolution's batch norm, and the ReLU or residual add and ReLU after
// it, run in the convolution's output pass (model.NetOptions.Fuse) with
// the separate layers' arithmetic: the same bits, one pass over the
// activations fewer per layer.
//
// Quantized layers that do not run on integer kernels compute in float on
// the values their integers stand for, as model.Logits does. Sparse
// kernels sum each output in another order than a dense product, and a
// static (or full-range dynamic) layer's exact integer sums differ from the float product of the
// same quantized values by that product's rounding: their logits differ
// from model.Logits' in the last bits (the accuracies of the checkpoints
// tested did not change: docs/PERFORMANCE.md). Options.Reference turns
// both off.
//
// # Batches
//
// Dynamically quantized activations take their range from the whole batch
// a call passes (as PyTorch's dynamic layers do): to reproduce `shrink
// eval`'s numbers, pass its batches (Logits does). Calls of more than
// Options.MaxBatch samples run in chunks of MaxBatch. A network all of
// whose layers with weights run on static integer kernels (a statically
// quantized checkpoint) computes each sample's logits the same bits
// whatever shares its batch (exact integer sums, element-wise float
// epilogues), so if it has convolutions it runs any batch in micro-batches
// of microBatch samples, whose activations stay in cache from one layer to
// the next. Each batch size
// keeps its own compiled nets (one per concurrent caller); the
// Options.Sizes most recently used sizes are kept.
package infer

import (
	"context"
	"fmt"
	"sync"

	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/export"
	"github.com/shrink-ml/shrink/internal/sparse"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/nn"
)

// Options configure a Model; the zero value is the default.
type Options struct {
	// MaxBatch is the largest batch one graph runs (default 1024); longer
	// calls are cut into chunks of it.
	MaxBatch int
	// Sizes is how many batch sizes keep compiled graphs (default 4).
	Sizes int
	// Reference computes every layer as model.Logits does, the bits shrink
	// eval gave before this package: float layers densely (no sparse
	// kernels), statically quantized layers in float on the values their
	// integers stand for (no integer kernels; dynamically quantized layers
	// keep theirs, which define their results).
	Reference bool
}

func (o Options) withDefaults() Options {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.Sizes <= 0 {
		o.Sizes = 4
	}
	return o
}

// Model is a network ready for inference. Its methods are safe for
// concurrent use.
type Model struct {
	m       *model.Model
	opt     Options
	in      int
	classes int
	// cands are the linear layers that may run sparse, with their weights
	// in sparse form (built once, shared by every net).
	cands map[string]*candidate

	// step is the largest batch one net runs: Options.MaxBatch, or
	// microBatch for a convolutional network whose samples are
	// independent (perSample, hasConv).
	step int

	mu    sync.Mutex
	pools map[int]*pool
	clock uint64
}

// microBatch is the batch a perSample network runs longer calls in. The
// pruned int8 ResNet-20 of recipes/resnet-fashion-compress.yaml on one
// thread, 256 images (median of 5 rounds, docs/PERFORMANCE.md): 35 ms in
// micro-batches of 4 or 8, 36 of 16, 38-40 of 32 or 64, 44-51 as one net
// of 256, whose layers stream every activation tensor (8.8 MB of floats at
// 28×28) through memory; 8 images' fit in this core's 1 MB of L2.
const microBatch = 8

// perSample reports whether every layer with weights runs on static
// integer kernels: the network's logits for a sample are then the same
// bits in any batch of any size, so batches can be cut anywhere.
func perSample(m *model.Model) bool {
	for _, l := range m.Layers {
		// A LoRA adapter's float product is not checked to give a row
		// the same bits in any batch.
		if len(l.Weights) > 0 && !l.RunsStaticInt8() || l.Adapter != nil {
			return false
		}
	}
	return true
}

// hasConv reports whether m has a convolution. Micro-batches pay where
// activations are large and weights are reused within a sample (a
// convolution's across its positions): a network of linear layers reuses
// each weight only across the batch's rows, so cutting the batch multiplies
// its weight traffic (the static LeNet-300-100 at batch 256: 0.66 ms in
// micro-batches of 8 against 0.39 ms as one net; LeNet-5's qat checkpoint
// 16.6 against 18.1-18.8 ms).
func hasConv(m *model.Model) bool {
	for _, l := range m.Layers {
		if l.Type == "conv2d" {
			return true
		}
	}
	return false
}

type candidate struct {
	density float64
	in, out int
	w       *sparse.Matrix
}

// pool holds the idle nets of one batch size.
type pool struct {
	batch  int
	sparse map[string]*sparse.Matrix
	idle   []*model.Net
	used   uint64
}

// Load reads a checkpoint: any stage's safetensors output, a compressed
// export (.shkz) or an ONNX file (export.LoadModel).
func Load(path string, opt Options) (*Model, error) {
	m, err := export.LoadModel(path, nil)
	if err != nil {
		return nil, err
	}
	return New(m, opt)
}

// New prepares m for inference. m must not change afterwards: the nets
// read its weights in place.
func New(m *model.Model, opt Options) (*Model, error) {
	if m == nil || len(m.Layers) == 0 {
		return nil, fmt.Errorf("infer: the model has no layers")
	}
	opt = opt.withDefaults()
	r := &Model{m: m, opt: opt, in: shapeSize(m.Spec.InputShape()), classes: m.Spec.Classes,
		cands: map[string]*candidate{}, pools: map[int]*pool{}, step: opt.MaxBatch}
	if !opt.Reference && perSample(m) && hasConv(m) {
		r.step = min(r.step, microBatch)
	}
	if !opt.Reference {
		for _, l := range m.Layers {
			if c := sparseCandidate(l); c != nil {
				r.cands[l.Name] = c
			}
		}
	}
	// Compile the batch-1 graph now, so a model that cannot run fails here.
	r.mu.Lock()
	p := r.pool(1)
	r.mu.Unlock()
	net, err := r.get(p)
	if err != nil {
		return nil, err
	}
	r.put(p, net)
	return r, nil
}

// sparseCandidate is l's weight in sparse form when l is a float linear
// layer sparse enough that some batch size would run it sparse. Layers on
// integer kernels stay there: the dense int8 product beats the float
// sparse one on every quantized checkpoint measured, Deep Compression's
// 92%-pruned LeNet-300-100 included (3.8 against 7.1 µs at batch 1, 0.39
// against 1.43 ms at 256; docs/PERFORMANCE.md).
func sparseCandidate(l *model.Layer) *candidate {
	if _, ok := l.Config.(*nn.Linear); !ok || len(l.Weights) != 1 || l.RunsInt8() || l.RunsFullInt8() || l.RunsStaticInt8() {
		return nil
	}
	w := l.Weights[0]
	if len(w.Shape) != 2 || len(w.Data) == 0 {
		return nil
	}
	nz := 0
	for _, v := range w.Data {
		if v != 0 {
			nz++
		}
	}
	out, in := w.Shape[0], w.Shape[1]
	d := float64(nz) / float64(len(w.Data))
	if !sparse.Worth(d, 1, in, out) { // batch 1 has the highest threshold
		return nil
	}
	return &candidate{density: d, in: in, out: out, w: sparse.New(w.Data, out, in)}
}

// InputSize is the number of values of one sample.
func (r *Model) InputSize() int { return r.in }

// Classes is the number of outputs (logits) of one sample.
func (r *Model) Classes() int { return r.classes }

// Model is the network this Model runs (do not modify it).
func (r *Model) Model() *model.Model { return r.m }

// Predict runs n samples (x holds n·InputSize() values, sample after
// sample) and returns their n·Classes() logits.
func (r *Model) Predict(x []float32, n int) ([]float32, error) {
	if n < 0 {
		return nil, fmt.Errorf("infer: Predict of %d samples: n counts the samples in x, 0 or more", n)
	}
	out := make([]float32, n*r.classes)
	if err := r.PredictInto(out, x, n); err != nil {
		return nil, err
	}
	return out, nil
}

// PredictInto is Predict writing the logits into dst (n·Classes() values);
// it allocates nothing once a graph for the batch size exists.
func (r *Model) PredictInto(dst, x []float32, n int) error {
	switch {
	case n < 0:
		return fmt.Errorf("infer: Predict of %d samples: n counts the samples in x, 0 or more", n)
	case len(x) != n*r.in:
		return fmt.Errorf("infer: %d input values for %d samples of %d, want %d", len(x), n, r.in, n*r.in)
	case len(dst) < n*r.classes:
		return fmt.Errorf("infer: room for %d logits, want %d (%d samples of %d)", len(dst), n*r.classes, n, r.classes)
	}
	for start := 0; start < n; start += r.opt.MaxBatch {
		rows := min(r.opt.MaxBatch, n-start)
		if err := r.run(dst[start*r.classes:(start+rows)*r.classes], x[start*r.in:(start+rows)*r.in], rows); err != nil {
			return err
		}
	}
	return nil
}

// run computes one batch on a net of exactly its size.
func (r *Model) run(dst, x []float32, rows int) error { return r.runPadded(dst, x, rows, rows) }

// pool is the pool of a batch size, made if need be, evicting the least
// recently used size beyond Options.Sizes. r.mu must be held.
func (r *Model) pool(batch int) *pool {
	r.clock++
	if p, ok := r.pools[batch]; ok {
		p.used = r.clock
		return p
	}
	if len(r.pools) >= r.opt.Sizes {
		var old *pool
		for _, q := range r.pools {
			if old == nil || q.used < old.used {
				old = q
			}
		}
		delete(r.pools, old.batch) // nets in use return to it and are dropped with it
	}
	p := &pool{batch: batch, used: r.clock, sparse: map[string]*sparse.Matrix{}}
	for name, c := range r.cands {
		if sparse.Worth(c.density, batch, c.in, c.out) {
			p.sparse[name] = c.w
		}
	}
	r.pools[batch] = p
	return p
}

// get takes an idle net of p's size or compiles one.
func (r *Model) get(p *pool) (*model.Net, error) {
	r.mu.Lock()
	if k := len(p.idle); k > 0 {
		net := p.idle[k-1]
		p.idle = p.idle[:k-1]
		r.mu.Unlock()
		return net, nil
	}
	r.mu.Unlock()
	net, err := model.Build(r.m, model.NetOptions{Batch: p.batch, Mode: model.ModeEval, Sparse: p.sparse, StaticInt8: !r.opt.Reference, Fuse: !r.opt.Reference})
	if err != nil {
		return nil, fmt.Errorf("infer: compiling for a batch of %d: %w", p.batch, err)
	}
	return net, nil
}

func (r *Model) put(p *pool, net *model.Net) {
	r.mu.Lock()
	p.idle = append(p.idle, net)
	r.mu.Unlock()
}

// Layer is one layer's kernels at a batch size.
type Layer struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Kernel is "int8", "sparse" or "dense" for a layer with weights, ""
	// for one without (activations, pooling, ...).
	Kernel string `json:"kernel,omitempty"`
	// Density is the fraction of nonzero weights.
	Density float64 `json:"density,omitempty"`
}

// Layers lists the kernels each layer runs on at this batch size.
func (r *Model) Layers(batch int) []Layer {
	var out []Layer
	for _, l := range r.m.Layers {
		e := Layer{Name: l.Label(), Type: l.Type}
		if len(l.Weights) > 0 {
			var nz, all int
			for _, w := range l.Weights {
				for _, v := range w.Data {
					if v != 0 {
						nz++
					}
				}
				all += len(w.Data)
			}
			if all > 0 {
				e.Density = float64(nz) / float64(all)
			}
			switch c := r.cands[l.Name]; {
			case l.RunsInt8():
				e.Kernel = "int8"
			case c != nil && sparse.Worth(c.density, batch, c.in, c.out):
				e.Kernel = "sparse"
			case !r.opt.Reference && (l.RunsStaticInt8() || l.RunsFullInt8()):
				e.Kernel = "int8"
			default:
				e.Kernel = "dense"
			}
		}
		out = append(out, e)
	}
	return out
}

// Logits runs the model over a split in batches of batch samples, the
// last one padded with copies of its first sample as `shrink eval` pads
// it, and returns the [N, Classes()] logits: the numbers shrink eval
// reports come from these.
func (r *Model) Logits(ctx context.Context, s *data.Split, batch int) ([]float32, error) {
	if s.Features != r.in {
		return nil, fmt.Errorf("infer: the data has %d values per sample, the model takes %d", s.Features, r.in)
	}
	batch = min(max(batch, 1), max(s.N, 1))
	out := make([]float32, s.N*r.classes)
	x := make([]float32, batch*r.in)
	for start := 0; start < s.N; start += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rows := min(batch, s.N-start)
		xb, _ := s.Batch(start/batch, batch)
		copy(x, xb[:rows*r.in])
		for i := rows; i < batch; i++ {
			copy(x[i*r.in:(i+1)*r.in], x[:r.in])
		}
		if err := r.runPadded(out[start*r.classes:(start+rows)*r.classes], x, batch, rows); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// runPadded is run on a batch whose first rows samples are real (layers
// with statistics over the batch count only them). A perSample network
// runs the real rows in micro-batches of r.step.
func (r *Model) runPadded(dst, x []float32, batch, rows int) error {
	if batch > r.opt.MaxBatch {
		return fmt.Errorf("infer: a batch of %d exceeds MaxBatch %d: raise Options.MaxBatch, or run smaller batches", batch, r.opt.MaxBatch)
	}
	if batch <= r.step {
		return r.runNet(batch, dst, x, rows)
	}
	for start := 0; start < rows; start += r.step {
		n := min(r.step, rows-start)
		if err := r.runNet(r.step, dst[start*r.classes:(start+n)*r.classes], x[start*r.in:(start+n)*r.in], n); err != nil {
			return err
		}
	}
	return nil
}

// runNet runs a net of batch samples on x's samples (at most batch, of
// which the first rows are real), the rest of the batch filled with
// copies of the first sample, as shrink eval pads its last batch.
func (r *Model) runNet(batch int, dst, x []float32, rows int) error {
	r.mu.Lock()
	p := r.pool(batch)
	r.mu.Unlock()
	net, err := r.get(p)
	if err != nil {
		return err
	}
	defer r.put(p, net)
	n := copy(net.X, x)
	for i := n; r.in > 0 && i < len(net.X); i += r.in {
		copy(net.X[i:i+r.in], x[:r.in])
	}
	net.SetRows(rows)
	if err := net.Run(); err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	copy(dst, net.Logits()[:rows*r.classes])
	return nil
}

func shapeSize(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}
