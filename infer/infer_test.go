package infer

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/sparse"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
)

// testModel is a network of each kind infer treats differently.
type testModel struct {
	name string
	m    *model.Model
	// kernels are the weight layers' kernels at batch 1.
	kernels []string
	// exact: Predict gives `shrink eval`'s bits (no sparse layer).
	exact bool
	// fallback is the kernel of a layer expected sparse whose density is
	// above this machine's threshold ("dense" when empty).
	fallback string
}

func testModels() []testModel {
	rng := rand.New(rand.NewPCG(1, 2))
	mlp := arch.Spec{Arch: "mlp", Inputs: 64, Hidden: arch.Widths{48, 32}, Classes: 10}
	dense := model.MustNew(mlp, rng)
	pruned := model.MustNew(mlp, rng)
	prune(pruned, rng, map[string]float64{"fc1": 0.08, "fc2": 0.09, "fc3": 0.5})
	dynamic := model.MustNew(mlp, rng)
	quantizeDynamic(dynamic)
	// quantize-int8's default: dynamic inputs over all 256 codes, on
	// integer kernels outside Reference (exact sums, not the float ones).
	dynamicFull := model.MustNew(mlp, rng)
	quantizeDynamic(dynamicFull)
	for _, l := range dynamicFull.WeightLayers() {
		l.Input.Spec.ReduceRange = false
	}
	// Deep Compression: pruned, then its weights on a 4-bit grid (computed
	// in float on the values the integers stand for).
	dc := model.MustNew(mlp, rng)
	prune(dc, rng, map[string]float64{"fc1": 0.08, "fc2": 0.09, "fc3": 0.26})
	for _, l := range dc.WeightLayers() {
		l.Quant = &quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerTensor}
	}
	dc.Requantize()
	// Deep Compression with QAT's static 8-bit inputs: integer kernels,
	// which beat the float sparse ones on such layers.
	dcStatic := model.MustNew(mlp, rng)
	prune(dcStatic, rng, map[string]float64{"fc1": 0.08, "fc2": 0.09, "fc3": 0.26})
	staticInputs(dcStatic, quant.Spec{Bits: 4, Scheme: quant.Symmetric, Granularity: quant.PerTensor})
	lstm := model.MustNew(arch.Spec{Arch: "lstm", Input: arch.Shape{5, 6}, Hidden: arch.Widths{12}, NumLayers: 2, Classes: 4}, rng)
	quantizeDynamic(lstm)
	resnet := model.MustNew(arch.Spec{Arch: "resnet", Depth: 8, Width: 4, Input: arch.Shape{1, 8, 8}, Classes: 3}, rng)
	lenet := model.MustNew(arch.Spec{Arch: "lenet5", Classes: 10}, rng)
	static := model.MustNew(arch.Spec{Arch: "resnet", Depth: 8, Width: 4, Input: arch.Shape{3, 8, 8}, Classes: 3}, rng)
	staticInputs(static, quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel})
	return []testModel{
		{"mlp", dense, []string{"dense", "dense", "dense"}, true, ""},
		{"pruned", pruned, []string{"sparse", "sparse", "dense"}, false, ""},
		{"dynamic", dynamic, []string{"int8", "int8", "int8"}, true, ""},
		{"dynamic-full", dynamicFull, []string{"int8", "int8", "int8"}, false, ""},
		{"deep-compression", dc, []string{"sparse", "sparse", "sparse"}, false, ""},
		{"lstm-dynamic", lstm, []string{"int8", "int8"}, true, ""},
		{"resnet", resnet, nil, true, ""},
		{"lenet5", lenet, []string{"dense", "dense", "dense", "dense", "dense"}, true, ""},
		{"resnet-static-int8", static, slices.Repeat([]string{"int8"}, 10), false, ""},
		{"deep-compression-static", dcStatic, []string{"int8", "int8", "int8"}, false, ""},
	}
}

// prune zeroes all but a fraction of each named layer's weights at random.
func prune(m *model.Model, rng *rand.Rand, keep map[string]float64) {
	for name, k := range keep {
		w := m.Layer(name).Weights[0].Data
		for i := range w {
			if rng.Float64() >= k {
				w[i] = 0
			}
		}
	}
}

// staticInputs quantizes every weight layer's weights with w and its
// inputs statically to 8 bits over [-4, 6].
func staticInputs(m *model.Model, w quant.Spec) {
	for _, l := range m.WeightLayers() {
		l.Quant = &w
		spec := quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor}
		s, zp := spec.ParamsOf(-4, 6)
		l.Input = &model.ActQuant{Mode: "static", Spec: spec, RangeMin: -4, RangeMax: 6, Params: quant.Params{Scale: []float32{s}, ZeroPoint: []int32{zp}}}
	}
	m.Requantize()
}

// quantizeDynamic quantizes every weight layer as torch.ao's
// quantize_dynamic does.
func quantizeDynamic(m *model.Model) {
	for _, l := range m.WeightLayers() {
		l.Quant = &quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
		l.Input = &model.ActQuant{Mode: "dynamic", Spec: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor, ReduceRange: true}}
	}
	m.Requantize()
}

func randSplit(rng *rand.Rand, m *model.Model, n int) *data.Split {
	shape := m.Spec.InputShape()
	f := shapeSize(shape)
	s := &data.Split{X: make([]float32, n*f), Y: make([]int32, n), N: n, Features: f, Shape: shape}
	for i := range s.X {
		s.X[i] = float32(rng.NormFloat64())
	}
	for i := range s.Y {
		s.Y[i] = int32(rng.IntN(m.Spec.Classes))
	}
	return s
}

// Logits equals model.Logits, which `shrink eval` measured before infer
// existed: the same bits where no layer runs sparse or static int8
// kernels, and the same bits with Options.Reference; with them, the same
// predictions and logits within float rounding.
func TestLogitsMatchEval(t *testing.T) {
	for _, tm := range testModels() {
		t.Run(tm.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			s := randSplit(rng, tm.m, 45) // a short last batch
			const batch = 16
			want, err := model.Logits(context.Background(), tm.m, s, batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, ref := range []bool{false, true} {
				r, err := New(tm.m, Options{Reference: ref})
				if err != nil {
					t.Fatal(err)
				}
				got, err := r.Logits(context.Background(), s, batch)
				if err != nil {
					t.Fatal(err)
				}
				if tm.exact || ref {
					if !slices.Equal(got, want) {
						t.Errorf("reference=%v: logits differ from model.Logits by %g", ref, maxRelDiff(got, want))
					}
					continue
				}
				if d := maxRelDiff(got, want); d > 1e-5 {
					t.Errorf("logits differ from model.Logits by %g of the largest", d)
				}
				if a, b := argmaxes(got, tm.m.Spec.Classes), argmaxes(want, tm.m.Spec.Classes); !slices.Equal(a, b) {
					t.Errorf("the kernels change predictions: %v, want %v", a, b)
				}
			}
		})
	}
}

// Predict of n samples equals a model.Net compiled for a batch of n.
func TestPredictMatchesNet(t *testing.T) {
	for _, tm := range testModels() {
		t.Run(tm.name, func(t *testing.T) {
			r, err := New(tm.m, Options{Reference: true, MaxBatch: 8})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(5, 6))
			for _, n := range []int{1, 3, 8, 20} {
				s := randSplit(rng, tm.m, n)
				got, err := r.Predict(s.X, n)
				if err != nil {
					t.Fatal(err)
				}
				var want []float32
				for start := 0; start < n; start += 8 { // MaxBatch chunks
					rows := min(8, n-start)
					net, err := model.Build(tm.m, model.NetOptions{Batch: rows, Mode: model.ModeEval}) // as Reference builds
					if err != nil {
						t.Fatal(err)
					}
					copy(net.X, s.X[start*s.Features:(start+rows)*s.Features])
					if err := net.Run(); err != nil {
						t.Fatal(err)
					}
					want = append(want, net.Logits()...)
				}
				if !slices.Equal(got, want) {
					t.Errorf("n=%d: Predict differs from the net by %g", n, maxRelDiff(got, want))
				}
			}
		})
	}
}

func TestLayersNameKernels(t *testing.T) {
	for _, tm := range testModels() {
		if tm.kernels == nil {
			continue
		}
		t.Run(tm.name, func(t *testing.T) {
			r, err := New(tm.m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, l := range r.Layers(1) {
				if l.Kernel != "" {
					got = append(got, l.Kernel)
					k := tm.kernels[len(want)]
					if k == "sparse" && l.Density >= sparse.Threshold(1) {
						k = cmp.Or(tm.fallback, "dense") // the Go fallback pays only at lower densities
					}
					want = append(want, k)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("kernels at batch 1 %v, want %v", got, want)
			}
			// At a large batch a dense GEMM beats the sparse kernels at
			// densities of 26% and 50%.
			for _, l := range r.Layers(512) {
				if l.Kernel == "sparse" && l.Density > 0.2 {
					t.Errorf("%s at density %.2f runs sparse at batch 512", l.Name, l.Density)
				}
				if want := cmp.Or(tm.fallback, "dense"); l.Kernel != "" && l.Kernel != "sparse" && slices.Contains(tm.kernels, "sparse") && l.Kernel != want && !slices.Contains(tm.kernels, l.Kernel) {
					t.Errorf("%s runs %s at batch 512, want sparse or %s", l.Name, l.Kernel, want)
				}
			}
		})
	}
}

// Concurrent calls of several batch sizes give the serial results (run
// with -race).
func TestConcurrentPredict(t *testing.T) {
	for _, tm := range testModels() {
		t.Run(tm.name, func(t *testing.T) {
			r, err := New(tm.m, Options{Sizes: 2}) // sizes get evicted meanwhile
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(7, 8))
			sizes := []int{1, 3, 16}
			inputs := make([]*data.Split, len(sizes))
			want := make([][]float32, len(sizes))
			for i, n := range sizes {
				inputs[i] = randSplit(rng, tm.m, n)
				if want[i], err = r.Predict(inputs[i].X, n); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for g := 0; g < 6; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := 0; k < 10; k++ {
						i := (g + k) % len(sizes)
						got, err := r.Predict(inputs[i].X, sizes[i])
						if err != nil {
							t.Error(err)
							return
						}
						if !slices.Equal(got, want[i]) {
							t.Errorf("goroutine %d, batch %d: differs from the serial result", g, sizes[i])
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

func TestPredictAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, tm := range testModels() {
		t.Run(tm.name, func(t *testing.T) {
			r, err := New(tm.m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(9, 10))
			for _, n := range []int{1, 16, 40} { // 40: three micro-batches of a static int8 net
				s := randSplit(rng, tm.m, n)
				dst := make([]float32, n*r.Classes())
				if err := r.PredictInto(dst, s.X, n); err != nil { // compiles
					t.Fatal(err)
				}
				if a := testing.AllocsPerRun(20, func() {
					if err := r.PredictInto(dst, s.X, n); err != nil {
						t.Fatal(err)
					}
				}); a != 0 {
					t.Errorf("batch %d: PredictInto allocates %v times per call", n, a)
				}
			}
		})
	}
}

func TestPredictRejectsBadSizes(t *testing.T) {
	tm := testModels()[0]
	r, err := New(tm.m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		x    []float32
		n    int
	}{
		{"short input", make([]float32, 63), 1},
		{"long input", make([]float32, 65), 1},
		{"negative n", nil, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := r.Predict(c.x, c.n); err == nil {
				t.Error("no error")
			}
		})
	}
	if got, err := r.Predict(nil, 0); err != nil || len(got) != 0 {
		t.Errorf("Predict of 0 samples: %v, %v", got, err)
	}
}

// Load reads a saved checkpoint back and predicts what the model did.
func TestLoadSavedCheckpoint(t *testing.T) {
	for _, tm := range testModels() {
		t.Run(tm.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.safetensors")
			if _, err := tm.m.Save(path, nil); err != nil {
				t.Fatal(err)
			}
			r, err := Load(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ref, err := New(tm.m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s := randSplit(rand.New(rand.NewPCG(11, 12)), tm.m, 5)
			got, err := r.Predict(s.X, 5)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := ref.Predict(s.X, 5)
			if !slices.Equal(got, want) {
				t.Errorf("the loaded checkpoint predicts differently (by %g)", maxRelDiff(got, want))
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.safetensors"), Options{}); err == nil {
		t.Error("loading a missing file: no error")
	}
}

func argmaxes(logits []float32, classes int) []int {
	out := make([]int, len(logits)/classes)
	for i := range out {
		row := logits[i*classes : (i+1)*classes]
		for j, v := range row {
			if v > row[out[i]] {
				out[i] = j
			}
		}
	}
	return out
}

func maxRelDiff(a, b []float32) float64 {
	var scale, worst float64
	for i := range b {
		scale = max(scale, math.Abs(float64(b[i])))
		worst = max(worst, math.Abs(float64(a[i])-float64(b[i])))
	}
	if scale == 0 {
		return worst
	}
	return worst / scale
}

// A network whose every weight layer runs on static integer kernels runs
// long batches in micro-batches, and its logits are the bits one net of
// the whole batch gives (Predict and Logits, batches cut unevenly, a short
// last micro-batch padded); other networks keep whole batches.
func TestMicroBatches(t *testing.T) {
	for _, tm := range testModels() {
		t.Run(tm.name, func(t *testing.T) {
			r, err := New(tm.m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			// Only the convolutional static net: the static MLP keeps its
			// batch (its linear layers reuse weights across the rows).
			static := tm.name == "resnet-static-int8"
			if want := map[bool]int{true: microBatch, false: 1024}[static]; r.step != want {
				t.Fatalf("step %d, want %d", r.step, want)
			}
			if !static {
				return
			}
			rng := rand.New(rand.NewPCG(11, 12))
			for _, n := range []int{microBatch + 1, 3*microBatch - 5, 40} {
				s := randSplit(rng, tm.m, n)
				net, err := model.Build(tm.m, model.NetOptions{Batch: n, Mode: model.ModeEval, StaticInt8: true, Fuse: true})
				if err != nil {
					t.Fatal(err)
				}
				copy(net.X, s.X)
				if err := net.Run(); err != nil {
					t.Fatal(err)
				}
				want := net.Logits()
				got, err := r.Predict(s.X, n)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("n=%d: Predict's micro-batches differ from one net by %g", n, maxRelDiff(got, want))
				}
				logits, err := r.Logits(context.Background(), s, n)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(logits, want) {
					t.Errorf("n=%d: Logits' micro-batches differ from one net by %g", n, maxRelDiff(logits, want))
				}
			}
		})
	}
}
