package quantize_test

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/internal/testkit"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages/quantize"
)

// torchDynamic are the keys that reproduce torch.ao.quantization.quantize_dynamic(model,
// {nn.LSTM, nn.Linear}, dtype=torch.qint8) on fbgemm/x86.
const torchDynamic = `{"mode": "dynamic", "bits": 8, "scheme": "symmetric", "granularity": "per_tensor",
	"activations": {"bits": 8, "scheme": "asymmetric", "reduce_range": true}}`

// The quantize stage with torchDynamic makes PyTorch's quantized model
// (testdata/dynamic, made by make_dynamic.py with PyTorch 1.13): every weight's
// int8 values and scale bit for bit, stored as compressed-tensors lays them
// out; read back, its logits over the same batches equal the quantized
// model's (argmax agreement at least 99.8%, median relative error at most
// 1e-4) where the float model's are 1 to 3% away.
func TestDynamicReproducesPyTorch(t *testing.T) {
	for _, name := range []string{"lstm_preset", "lstm_2layer", "mlp"} {
		t.Run(name, func(t *testing.T) {
			fx := readDynamic(t, name)
			m, err := model.FromFile(fx.state, &fx.spec)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			got, err := model.Logits(ctx, m, fx.x, fx.batch)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxRel(got, testkit.Floats(t, fx.f, "float.logits")); d > 1e-4 {
				t.Errorf("float logits off by %g of their largest", d)
			}

			cfg := testkit.Decode(t, "quantize", rawJSON(t, torchDynamic)).(*quantize.Config)
			res := run(t, cfg, stageContext("quantize", fx.spec, m, nil, data.Config{}))
			f, back := testkit.SaveAndLoad(t, res.Model)
			checkTorchWeights(t, fx.f, f)

			got, err = model.Logits(ctx, back, fx.x, fx.batch)
			if err != nil {
				t.Fatal(err)
			}
			want := testkit.Floats(t, fx.f, "int8.logits")
			agree, median, worst := compareLogits(got, want, fx.spec.Classes)
			t.Logf("vs PyTorch's quantized model: argmax agreement %.4f, median relative error %.2e, largest %.2e", agree, median, worst)
			if agree < 0.998 || median > 1e-4 {
				t.Errorf("argmax agreement %.4f (want >= 0.998), median relative error %.2e (want <= 1e-4)", agree, median)
			}
			fl := testkit.Floats(t, fx.f, "float.logits")
			if a, med, _ := compareLogits(fl, want, fx.spec.Classes); a >= 0.998 && med <= 1e-4 {
				t.Fatalf("the fixture cannot tell quantized from float logits (agreement %.4f, median %.2e)", a, med)
			}
		})
	}
}

type dynamicFixture struct {
	f     *checkpoint.File
	state *checkpoint.File
	spec  arch.Spec
	x     *data.Split
	batch int
}

func readDynamic(t *testing.T, name string) *dynamicFixture {
	t.Helper()
	f, err := checkpoint.ReadFile(filepath.Join(testkit.Root(), "testdata", "dynamic", name+".safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	fx := &dynamicFixture{f: f, state: &checkpoint.File{}}
	var raw map[string]any
	if err := json.Unmarshal([]byte(f.Metadata["model"]), &raw); err != nil {
		t.Fatal(err)
	}
	spec := arch.Default()
	if errs := config.Decode(testkit.JSONInts(raw).(map[string]any), spec); len(errs) > 0 {
		t.Fatalf("model section: %v", errs)
	}
	fx.spec = *spec
	if fx.batch, err = strconv.Atoi(f.Metadata["eval_batch"]); err != nil {
		t.Fatal(err)
	}
	for _, n := range f.Names() {
		if n == "x" || n == "y" || strings.Contains(n, "logits") || strings.HasPrefix(n, "q.") {
			continue
		}
		tn, _ := f.Get(n)
		fx.state.Set(*tn)
	}
	x, _ := f.Get("x")
	split := &data.Split{N: x.Shape[0], Shape: x.Shape[1:], X: testkit.Floats(t, f, "x")}
	split.Features = arch.Shape(split.Shape).Size()
	yt, _ := f.Get("y")
	ys, err := yt.Int64s()
	if err != nil {
		t.Fatal(err)
	}
	for _, y := range ys {
		split.Y = append(split.Y, int32(y))
	}
	fx.x = split
	return fx
}

// checkTorchWeights compares every q.NAME (PyTorch's int8 values) and
// q.NAME_scale with the checkpoint's NAME and NAME_scale, bit for bit, and
// checks that the checkpoint quantizes no other weight.
func checkTorchWeights(t *testing.T, fixture, f *checkpoint.File) {
	t.Helper()
	seen := 0
	for _, n := range fixture.Names() {
		if !strings.HasPrefix(n, "q.") || strings.HasSuffix(n, "_scale") {
			continue
		}
		w := strings.TrimPrefix(n, "q.")
		seen++
		if got, want := testkit.Int8s(t, f, w), testkit.Int8s(t, fixture, n); !slices.Equal(got, want) {
			t.Errorf("%s: int8 values differ from PyTorch's", w)
		}
		st, ok := f.Get(w + "_scale")
		if !ok || !slices.Equal(st.Shape, []int{1}) {
			t.Fatalf("%s_scale: missing or not [1]", w)
		}
		got, want := testkit.Floats(t, f, w+"_scale")[0], testkit.Floats(t, fixture, n+"_scale")[0]
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Errorf("%s_scale = %g, PyTorch's %g", w, got, want)
		}
		if _, ok := f.Get(w + "_zero_point"); ok {
			t.Errorf("%s: symmetric weights store no zero point", w)
		}
	}
	stored := 0
	for _, tn := range f.Tensors {
		if tn.DType == checkpoint.DTypeI8 {
			stored++
		}
	}
	if seen == 0 || stored != seen {
		t.Errorf("the checkpoint holds %d int8 tensors, PyTorch's model %d", stored, seen)
	}
}

// compareLogits returns the argmax agreement and the median and largest
// relative error |got - want| / |want| over every logit.
func compareLogits(got, want []float32, classes int) (agree, median, worst float64) {
	n := len(want) / classes
	same := 0
	rel := make([]float64, len(want))
	for i := 0; i < n; i++ {
		if argmax(got[i*classes:(i+1)*classes]) == argmax(want[i*classes:(i+1)*classes]) {
			same++
		}
	}
	for i := range want {
		rel[i] = math.Abs(float64(got[i])-float64(want[i])) / math.Abs(float64(want[i]))
	}
	slices.Sort(rel)
	return float64(same) / float64(n), rel[len(rel)/2], rel[len(rel)-1]
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// maxRel is the largest |got - want| over want's largest magnitude.
func maxRel(got, want []float32) float64 {
	var scale, worst float64
	for i := range want {
		scale = max(scale, math.Abs(float64(want[i])))
		worst = max(worst, math.Abs(float64(got[i])-float64(want[i])))
	}
	return worst / scale
}
