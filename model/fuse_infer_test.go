package model

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/nn"
	"github.com/shrink-ml/shrink/quant"
)

// randomNorms gives every batch norm running statistics and affine
// parameters away from their initial 0 and 1, so a fusion that dropped or
// misplaced one would show.
func randomNorms(m *Model, rng *rand.Rand) {
	for _, l := range m.Layers {
		if l.Type != "batchnorm2d" {
			continue
		}
		for _, w := range append(slices.Clone(l.Params), l.Buffers...) {
			for i := range w.Data {
				switch {
				case strings.HasSuffix(w.Name, "running_var"):
					w.Data[i] = 0.3 + 2*rng.Float32()
				case strings.HasSuffix(w.Name, ".weight"):
					w.Data[i] = 0.5 + rng.Float32()
				default:
					w.Data[i] = float32(rng.NormFloat64() * 0.5)
				}
			}
		}
	}
}

// fusionCases cover every convolution path (tall layout, chunked with a
// stride, plain 1x1) with and without a bias, the three chain shapes (norm,
// norm+ReLU, norm+add+ReLU, the shortcut computed after the convolution in
// a downsampling block), a norm read twice (its ReLU and add stay apart)
// and the pruned ResNet-20's widths.
func fusionCases(t *testing.T) []struct {
	name   string
	spec   arch.Spec
	static bool
	left   string // the batch norm, ReLU, add and bias ops left unfused
} {
	t.Helper()
	js, err := os.ReadFile(filepath.Join("..", "bench", "testdata", "resnet20-fashion-pruned.json"))
	if err != nil {
		t.Fatal(err)
	}
	pruned, err := arch.Parse(string(js))
	if err != nil {
		t.Fatal(err)
	}
	custom := arch.Spec{Input: arch.Shape{3, 9, 9}, Classes: 4, Layers: []arch.LayerSpec{
		arch.NewLayer("c1", "conv2d", map[string]any{"out": 5, "kernel": 3, "stride": 2, "bias": true}),
		arch.NewLayer("n1", "batchnorm2d", nil),
		arch.NewLayer("r1", "relu", nil),
		arch.NewLayer("c2", "conv2d", map[string]any{"out": 5, "kernel": 3, "padding": 1, "bias": true}),
		arch.NewLayer("n2", "batchnorm2d", nil),
		arch.NewLayer("a2", "add", nil, "r1", "n2"), // the chain as the add's second input
		arch.NewLayer("r2", "relu", nil),
		arch.NewLayer("c3", "conv2d", map[string]any{"out": 7, "kernel": 1, "bias": false}),
		arch.NewLayer("n3", "batchnorm2d", nil), // read twice: fused alone
		arch.NewLayer("r3", "relu", nil, "n3"),
		arch.NewLayer("a3", "add", nil, "r3", "n3"),
		// batch norms folded into biases (a quantize or qat stage's output)
		arch.NewLayer("c5", "conv2d", map[string]any{"out": 7, "kernel": 3, "padding": 1, "bias": true}),
		arch.NewLayer("r5", "relu", nil),
		arch.NewLayer("c6", "conv2d", map[string]any{"out": 7, "kernel": 3, "padding": 1, "bias": true}),
		arch.NewLayer("a6", "add", nil, "c6", "r5"),
		arch.NewLayer("r6", "relu", nil),
		arch.NewLayer("c4", "conv2d", map[string]any{"out": 3, "kernel": 3, "padding": 1, "bias": false}),
		arch.NewLayer("n4", "batchnorm2d", nil), // a norm alone
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc", "linear", map[string]any{"out": 4}),
	}}
	const none = "bn 0 relu 0 add 0 bias 0"
	resnet8 := arch.Spec{Arch: "resnet", Depth: 8, Width: 4, Input: arch.Shape{3, 10, 10}, Classes: 3}
	return []struct {
		name   string
		spec   arch.Spec
		static bool
		left   string
	}{
		{"custom", custom, false, "bn 0 relu 1 add 1 bias 0"},
		{"custom-int8", custom, true, "bn 0 relu 1 add 1 bias 0"},
		{"resnet8", resnet8, false, none},
		{"resnet8-int8", resnet8, true, none},
		{"resnet20-pruned", pruned, false, none},
		{"resnet20-pruned-int8", pruned, true, none},
	}
}

// variedStatic quantizes m statically with different input parameters for
// every layer, some of them reduce_range, so that a convolution quantizing
// with another's parameters (as codes handed between them could) shows.
func variedStatic(m *Model, rng *rand.Rand) {
	for _, l := range m.WeightLayers() {
		l.Quant = &quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
		spec := quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor, ReduceRange: rng.IntN(3) == 0}
		lo, hi := -0.5-3*rng.Float32(), 1+5*rng.Float32()
		s, zp := spec.ParamsOf(lo, hi)
		l.Input = &ActQuant{Mode: "static", Spec: spec, RangeMin: lo, RangeMax: hi, Params: quant.Params{Scale: []float32{s}, ZeroPoint: []int32{zp}}}
	}
	m.Requantize()
}

// A fused network computes what the unfused one does, bit for bit: the
// output pass repeats the separate layers' arithmetic. Batch 1 and odd
// batches cut the chunks unevenly.
//
// Integer networks run both routes of their stride-1 convolutions (nn's
// column and taps routes), which must give the same bits too.
func TestFusedMatchesUnfused(t *testing.T) {
	for _, c := range fusionCases(t) {
		for _, batch := range []int{1, 3, 7} {
			var first []float32 // the first route's logits
			for _, taps := range []bool{false, true} {
				if taps && !c.static {
					continue
				}
				t.Run(c.name+fmt.Sprintf("/batch=%d/taps=%v", batch, taps), func(t *testing.T) {
					defer nn.UseInt8Taps(taps)()
					rng := rand.New(rand.NewPCG(7, uint64(batch)))
					m := MustNew(c.spec, rng)
					randomNorms(m, rng)
					if c.static {
						variedStatic(m, rng)
					}
					x := make([]float32, batch*shapeSize(m.Spec.InputShape()))
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					run := func(fuse bool) ([]float32, string) {
						t.Helper()
						net, err := Build(m, NetOptions{Batch: batch, Mode: ModeEval, StaticInt8: c.static, Fuse: fuse})
						if err != nil {
							t.Fatal(err)
						}
						copy(net.X, x)
						if err := net.Run(); err != nil {
							t.Fatal(err)
						}
						count := map[string]int{}
						for _, st := range net.exec.steps {
							count[fmt.Sprintf("%T", st.node.Op())]++
						}
						left := fmt.Sprintf("bn %d relu %d add %d bias %d", count["*nn.bnOp"], count["*nn.reluOp"], count["*nn.addOp"], count["*nn.channelBiasOp"])
						cl, codes, codesOnly := 0, 0, 0
						for _, ch := range net.chains {
							if ch.cl {
								cl++
							}
							if ch.codesOut != nil {
								codes++
							}
							if ch.codesOnly {
								codesOnly++
							}
						}
						if fuse && (c.static && !taps) != (cl > 0) {
							t.Errorf("%d chains' outputs stay channels-last (static int8 %v)", cl, c.static)
						}
						// Codes on the taps route: custom-int8's c5 hands c6
						// codes and floats (c6's residual), a ResNet's block
						// convolutions their codes alone.
						if fuse && (c.static && taps) != (codes > 0) || fuse && c.static && taps && strings.HasPrefix(c.name, "resnet") && codesOnly == 0 {
							t.Errorf("%d chains pass codes, %d codes alone (static int8 %v, taps route %v)", codes, codesOnly, c.static, taps)
						}
						return slices.Clone(net.Logits()), left
					}
					want, _ := run(false)
					got, left := run(true)
					if left != c.left {
						t.Errorf("ops left unfused: %s, want %s", left, c.left)
					}
					if !slices.Equal(got, want) {
						t.Errorf("fused logits differ from unfused ones by %g of the largest\n got %v\nwant %v", maxRelDiff(got, want), got, want)
					}
					if first == nil {
						first = got
					} else if !slices.Equal(got, first) {
						t.Errorf("the taps route's logits differ from the column route's by %g of the largest", maxRelDiff(got, first))
					}
				})
			}
		}
	}
}

// A fused network allocates nothing per call, float or int8.
func TestFusedRunDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, static := range []bool{false, true} {
		m := MustNew(arch.Spec{Arch: "resnet", Depth: 8, Width: 4, Input: arch.Shape{3, 10, 10}, Classes: 3}, rand.New(rand.NewPCG(1, 2)))
		if static {
			staticQuantize(m, -3, 5, false)
		}
		net, err := Build(m, NetOptions{Batch: 5, Mode: ModeEval, StaticInt8: static, Fuse: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := net.Run(); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(10, func() {
			if err := net.Run(); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("static int8 %v: %v allocations per run, want 0", static, n)
		}
	}
}

// Codes pass where two stride-1 integer convolutions read one tensor (one
// reads codes, the other floats, so both are written), from a strided
// writer, and into an unpadded 3×3 reader and a 1×1 one padded beyond its
// reach: the logits are the unfused net's and the column route's, on
// batches that cut chunks unevenly.
func TestFusedCodesReadTwice(t *testing.T) {
	spec := arch.Spec{Input: arch.Shape{3, 11, 9}, Classes: 4, Layers: []arch.LayerSpec{
		arch.NewLayer("c1", "conv2d", map[string]any{"out": 6, "kernel": 3, "stride": 2, "padding": 1, "bias": true}),
		arch.NewLayer("r1", "relu", nil),
		// r1 read by two stride-1 convs and a pooling
		arch.NewLayer("c2", "conv2d", map[string]any{"out": 5, "kernel": 5, "padding": 2, "bias": true}, "r1"),
		arch.NewLayer("r2", "relu", nil),
		arch.NewLayer("c3", "conv2d", map[string]any{"out": 5, "kernel": 1, "bias": true}, "r1"),
		arch.NewLayer("a23", "add", nil, "r2", "c3"),
		arch.NewLayer("c4", "conv2d", map[string]any{"out": 9, "kernel": 3, "padding": 0, "bias": true}, "a23"),
		arch.NewLayer("n4", "batchnorm2d", nil),
		arch.NewLayer("r4", "relu", nil),
		arch.NewLayer("c5", "conv2d", map[string]any{"out": 2, "kernel": 1, "padding": 1, "bias": false}, "r4"),
		arch.NewLayer("r5", "relu", nil),
		arch.NewLayer("c6", "conv2d", map[string]any{"out": 3, "kernel": 3, "padding": 1, "bias": true}, "r5"),
		arch.NewLayer("", "flatten", nil),
		arch.NewLayer("fc", "linear", map[string]any{"out": 4}),
	}}
	for _, batch := range []int{1, 2, 9} {
		var first []float32
		for _, taps := range []bool{false, true} {
			t.Run(fmt.Sprintf("batch=%d/taps=%v", batch, taps), func(t *testing.T) {
				defer nn.UseInt8Taps(taps)()
				rng := rand.New(rand.NewPCG(9, uint64(batch)))
				m := MustNew(spec, rng)
				randomNorms(m, rng)
				variedStatic(m, rng)
				x := make([]float32, batch*shapeSize(m.Spec.InputShape()))
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				run := func(fuse bool) []float32 {
					net, err := Build(m, NetOptions{Batch: batch, Mode: ModeEval, StaticInt8: true, Fuse: fuse})
					if err != nil {
						t.Fatal(err)
					}
					copy(net.X, x)
					for rep := 0; rep < 2; rep++ {
						if err := net.Run(); err != nil {
							t.Fatal(err)
						}
					}
					codes := 0
					for _, ch := range net.chains {
						if ch.codesOut != nil {
							codes++
						}
					}
					if fuse && taps && codes != 4 {
						t.Errorf("%d chains pass codes, want 4 (c1 to c2, c3 to c4, c4 to c5, c5 to c6)", codes)
					}
					return slices.Clone(net.Logits())
				}
				want, got := run(false), run(true)
				if !slices.Equal(got, want) {
					t.Errorf("fused %v, unfused %v", got, want)
				}
				if first == nil {
					first = got
				} else if !slices.Equal(got, first) {
					t.Errorf("taps %v, columns %v", got, first)
				}
			})
		}
	}
}
