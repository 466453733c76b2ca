package nf4

import (
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
)

func TestPyFloat(t *testing.T) {
	// Python 3's repr of each value (printed by /usr/bin/python3).
	for _, c := range []struct {
		f    float64
		want string
	}{
		{0.0, "0.0"},
		{0.5, "0.5"},
		{1.0, "1.0"},
		{2.0, "2.0"},
		{100.0, "100.0"},
		{0.1, "0.1"},
		{0.0001, "0.0001"},
		{0.00012345, "0.00012345"},
		{1e-05, "1e-05"},
		{1.5e-05, "1.5e-05"},
		{123456789012345.0, "123456789012345.0"},
		{1000000000000000.0, "1000000000000000.0"},
		{1234567890123456.0, "1234567890123456.0"},
		{1e+16, "1e+16"},
		{1.5e+16, "1.5e+16"},
		{6.805646932770577e+37, "6.805646932770577e+37"},
		{0.13801079988479614, "0.13801079988479614"},
		{3.4028234663852886e+38, "3.4028234663852886e+38"},
		{1.401298464324817e-45, "1.401298464324817e-45"},
		{9.99994610111476e-41, "9.99994610111476e-41"},
		{-0.25, "-0.25"},
		{-3e-07, "-3e-07"},
		{0.10000000149011612, "0.10000000149011612"},
		{12345.678, "12345.678"},
	} {
		if got := pyFloat(c.f); got != c.want {
			t.Errorf("pyFloat(%v) = %q, Python's repr is %q", c.f, got, c.want)
		}
	}
}

func TestQuantizeRejects(t *testing.T) {
	w := make([]float32, 12)
	for _, c := range []struct {
		name  string
		w     []float32
		shape []int
		bs    int
		want  string
	}{
		{"shape mismatch", w, []int{3, 5}, 64, "holds 15 elements but the weight has 12"},
		{"zero dim", w[:0], []int{0, 12}, 64, "dim < 1"},
		{"no shape", w, nil, 64, "shape is empty"},
		{"blocksize", w, []int{12}, 48, "blocksize 48"},
		{"NaN", []float32{1, float32(math.NaN())}, []int{2}, 64, "element 1 is NaN"},
		{"Inf", []float32{float32(math.Inf(-1))}, []int{1}, 64, "element 0 is -Inf"},
		{"too many", w, []int{1 << 16, 1 << 16}, 64, "2^31-1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Quantize(c.w, c.shape, c.bs, false)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "nf4: ") {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// randomWeight is a seeded normal weight with a few zero blocks.
func randomWeight(seed uint64, n int) []float32 {
	r := newRand(seed)
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.05)
	}
	return w
}

// TestFileRoundTrip writes a weight through checkpoint.WriteFile and reads it back.
func TestFileRoundTrip(t *testing.T) {
	for _, dq := range []bool{false, true} {
		q, err := Quantize(randomWeight(1, 300*97), []int{300, 97}, 128, dq)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := q.Tensors("fc1.weight")
		if err != nil {
			t.Fatal(err)
		}
		f := &checkpoint.File{Tensors: ts}
		f.Set(checkpoint.F32("fc1.bias", []int{300}, make([]float32, 300)))
		f.Set(checkpoint.F32("fc1.weightless", []int{1}, []float32{1})) // a prefix, not a child
		path := filepath.Join(t.TempDir(), "m.safetensors")
		if _, err := checkpoint.WriteFile(path, f); err != nil {
			t.Fatal(err)
		}
		g, err := checkpoint.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !Is(g, "fc1.weight") || Is(g, "fc1.bias") {
			t.Error("Is does not tell the NF4 weight")
		}
		r, err := FromTensors(g, "fc1.weight")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(q, r) {
			t.Errorf("double quant %v: read back %+v, wrote %+v", dq, r, q)
		}
		var data int
		for _, x := range ts {
			data += len(x.Data)
		}
		if data != q.Bytes() {
			t.Errorf("Bytes() = %d, the tensors hold %d", q.Bytes(), data)
		}
	}
}

// TestBytes pins the sizes docs/NF4.md quotes for a 784x300 layer.
func TestBytes(t *testing.T) {
	n := 784 * 300
	for _, c := range []struct {
		dq   bool
		want int
	}{
		// 117600 packed + 3675 float32 absmax + 64 map + the JSON
		{false, 117600 + 3675*4 + 64 + len(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [300, 784]}`)},
		// 117600 packed + 3675 codes + 15 nested float32 + 64 + 1024 maps + the JSON
		{true, 117600 + 3675 + 15*4 + 64 + 1024 + len(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [300, 784], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0}`)},
	} {
		q, err := Quantize(make([]float32, n), []int{300, 784}, 64, c.dq)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.Bytes(); got != c.want {
			t.Errorf("double quant %v: %d bytes, want %d", c.dq, got, c.want)
		}
	}
}

func TestDequantizeAllocates(t *testing.T) {
	for _, dq := range []bool{false, true} {
		q, err := Quantize(randomWeight(2, 128*512), []int{128, 512}, 64, dq)
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]float32, q.Len())
		if a := testing.AllocsPerRun(20, func() {
			if err := q.Dequantize(dst); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("double quant %v: Dequantize allocates %v times", dq, a)
		}
	}
}

func TestDequantizeChecks(t *testing.T) {
	q, err := Quantize(randomWeight(3, 130), []int{130}, 64, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Dequantize(make([]float32, 129)); err == nil {
		t.Error("Dequantize into a short buffer: no error")
	}
	bad := *q
	bad.Packed = bad.Packed[:10]
	if err := bad.Dequantize(make([]float32, 130)); err == nil {
		t.Error("a weight with too few packed bytes dequantized")
	}
	bad = *q
	nq := *q.Nested
	nq.Absmax = nil
	bad.Nested = &nq
	if err := bad.Dequantize(make([]float32, 130)); err == nil {
		t.Error("a double-quantized weight without nested absmax dequantized")
	}
}

// goodFile is a small double-quantized (or not) weight "l.weight" with a bias beside it.
func goodFile(t testing.TB, dq bool) *checkpoint.File {
	t.Helper()
	q, err := Quantize(randomWeight(4, 5*67), []int{5, 67}, 64, dq)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := q.Tensors("l.weight")
	if err != nil {
		t.Fatal(err)
	}
	f := &checkpoint.File{Tensors: ts}
	f.Set(checkpoint.F32("l.bias", []int{5}, make([]float32, 5)))
	return f
}

func stateWith(t *testing.T, f *checkpoint.File, edit func(string) string) {
	t.Helper()
	st, _ := f.Get("l.weight" + suffixState)
	js := edit(string(st.Data))
	f.Set(checkpoint.U8(st.Name, []int{len(js)}, []byte(js)))
}

// TestFromTensorsRejects: every malformed or inconsistent tensor is an error naming it.
func TestFromTensorsRejects(t *testing.T) {
	const w = "l.weight"
	rm := func(name string) func(*testing.T, *checkpoint.File) {
		return func(t *testing.T, f *checkpoint.File) {
			f.Tensors = slices.DeleteFunc(f.Tensors, func(x checkpoint.Tensor) bool { return x.Name == name })
		}
	}
	set := func(x checkpoint.Tensor) func(*testing.T, *checkpoint.File) {
		return func(t *testing.T, f *checkpoint.File) { f.Set(x) }
	}
	state := func(old, new string) func(*testing.T, *checkpoint.File) {
		return func(t *testing.T, f *checkpoint.File) {
			stateWith(t, f, func(s string) string {
				if !strings.Contains(s, old) {
					t.Fatalf("%q not in %s", old, s)
				}
				return strings.Replace(s, old, new, 1)
			})
		}
	}
	offset := func(v string) func(*testing.T, *checkpoint.File) {
		return func(t *testing.T, f *checkpoint.File) {
			stateWith(t, f, func(s string) string {
				i := strings.Index(s, `"nested_offset": `)
				if i < 0 {
					t.Fatalf("no nested_offset in %s", s)
				}
				return s[:i] + `"nested_offset": ` + v + "}"
			})
		}
	}
	nan := float32(math.NaN())
	for _, c := range []struct {
		name   string
		dq     bool
		edit   func(*testing.T, *checkpoint.File)
		tensor string
		want   string
	}{
		{"no state", false, rm(w + suffixState), w + suffixState, "missing"},
		{"fp4", false, set(checkpoint.U8(w+suffixStateFP4, []int{2}, []byte("{}"))), w + suffixStateFP4, "FP4"},
		{"state dtype", false, set(checkpoint.I8(w+suffixState, []int{2}, []int8{'{', '}'})), w + suffixState, "1-D U8"},
		{"state not JSON", false, state(`{"quant_type"`, `{quant_type`), w + suffixState, "not a JSON object"},
		{"state trailing", false, state(`]}`, `]} x`), w + suffixState, "text after"},
		{"state not UTF-8", false, state(`"float32"`, "\"float\xff\""), w + suffixState, "UTF-8"},
		{"state unknown key", false, state(`"blocksize"`, `"block_size"`), w + suffixState, `unknown key "block_size"`},
		{"quant_type", false, state(`"nf4"`, `"fp4"`), w + suffixState, `quant_type "fp4"`},
		{"blocksize", false, state(`"blocksize": 64`, `"blocksize": 48`), w + suffixState, "blocksize 48"},
		{"blocksize float", false, state(`"blocksize": 64`, `"blocksize": 64.0`), w + suffixState, "not an integer"},
		{"dtype", false, state(`"float32"`, `"int8"`), w + suffixState, `dtype "int8"`},
		{"shape missing", false, state(`"shape": [5, 67]`, `"shap": [5, 67]`), w + suffixState, "unknown key"},
		{"shape null", false, state(`[5, 67]`, `null`), w + suffixState, "not a list"},
		{"shape zero", false, state(`[5, 67]`, `[0, 67]`), w + suffixState, "dim < 1"},
		{"shape text", false, state(`[5, 67]`, `[5, "67"]`), w + suffixState, "not an integer"},
		{"shape wrong", false, state(`[5, 67]`, `[5, 66]`), w, "shape [168 1]"},
		{"nested partial", true, state(`, "nested_dtype": "float32"`, ``), w + suffixState, "come together"},
		{"nested dtype", true, state(`"nested_dtype": "float32"`, `"nested_dtype": "float16"`), w + suffixState, "nested_dtype"},
		{"nested blocksize", true, state(`"nested_blocksize": 256`, `"nested_blocksize": 100`), w + suffixState, "nested_blocksize 100"},
		{"nested offset text", true, offset(`"0.5"`), w + suffixState, "not a number"},
		{"nested offset huge", true, offset(`1e39`), w + suffixState, "not a finite float32"},
		{"nested offset NaN", true, offset(`NaN`), w + suffixState, "not a JSON object"},
		{"no weight", false, rm(w), w, "missing"},
		{"weight dtype", false, set(checkpoint.I8(w, []int{168, 1}, make([]int8, 168))), w, "dtype I8"},
		{"weight flat", false, set(checkpoint.U8(w, []int{168}, make([]byte, 168))), w, "shape [168]"},
		{"no absmax", false, rm(w + suffixAbsmax), w + suffixAbsmax, "missing"},
		{"absmax short", false, set(checkpoint.F32(w+suffixAbsmax, []int{5}, make([]float32, 5))), w + suffixAbsmax, "need [6]"},
		{"absmax NaN", false, set(checkpoint.F32(w+suffixAbsmax, []int{6}, []float32{1, 1, nan, 1, 1, 1})), w + suffixAbsmax, "value 2 is NaN"},
		{"absmax negative", false, set(checkpoint.F32(w+suffixAbsmax, []int{6}, []float32{1, -1, 1, 1, 1, 1})), w + suffixAbsmax, "value 1 is -1"},
		{"absmax U8", false, set(checkpoint.U8(w+suffixAbsmax, []int{6}, make([]byte, 6))), w + suffixAbsmax, "dtype U8"},
		{"no quant_map", false, rm(w + suffixQuantMap), w + suffixQuantMap, "missing"},
		{"quant_map short", false, set(checkpoint.F32(w+suffixQuantMap, []int{15}, Code[:15])), w + suffixQuantMap, "want F32 [16]"},
		{"quant_map other", false, set(checkpoint.F32(w+suffixQuantMap, []int{16}, append([]float32{-0.9}, Code[1:]...))), w + suffixQuantMap, "not the NF4 map"},
		{"nested tensors without nested state", false, set(checkpoint.F32(w+suffixNestedAbsmax, []int{1}, []float32{1})), w + suffixNestedAbsmax, "not double-quantized"},
		{"unknown child", false, set(checkpoint.F32(w+".scale", []int{1}, []float32{1})), w + ".scale", "unexpected"},
		{"dq absmax F32", true, set(checkpoint.F32(w+suffixAbsmax, []int{6}, make([]float32, 6))), w + suffixAbsmax, "U8 codes"},
		{"dq no nested absmax", true, rm(w + suffixNestedAbsmax), w + suffixNestedAbsmax, "missing"},
		{"dq nested absmax shape", true, set(checkpoint.F32(w+suffixNestedAbsmax, []int{2}, []float32{1, 1})), w + suffixNestedAbsmax, "want F32 [1]"},
		{"dq nested absmax Inf", true, set(checkpoint.F32(w+suffixNestedAbsmax, []int{1}, []float32{float32(math.Inf(1))})), w + suffixNestedAbsmax, "+Inf"},
		{"dq no nested map", true, rm(w + suffixNestedQuantMap), w + suffixNestedQuantMap, "missing"},
		{"dq nested map NaN", true, set(checkpoint.F32(w+suffixNestedQuantMap, []int{256}, append(make([]float32, 255), nan))), w + suffixNestedQuantMap, "entry 255 is NaN"},
		{"dq nested map I32", true, set(checkpoint.I32(w+suffixNestedQuantMap, []int{256}, make([]int32, 256))), w + suffixNestedQuantMap, "I32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := goodFile(t, c.dq)
			if _, err := FromTensors(f, w); err != nil {
				t.Fatalf("the unedited file: %v", err)
			}
			c.edit(t, f)
			_, err := FromTensors(f, w)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `nf4: tensor "`+c.tensor+`": `) || !strings.Contains(msg, c.want) {
				t.Errorf("error %q, want one naming %q and containing %q", msg, c.tensor, c.want)
			}
		})
	}
}

// TestDequantizeMatchesNaive: the table-per-block loop equals dequantize_4bit's
// per-element formula for odd and even sizes, every block size, both layouts.
func TestDequantizeMatchesNaive(t *testing.T) {
	for _, bs := range []int{32, 64, 128, 256, 512, 1024, 2048, 4096} {
		for _, n := range []int{1, 2, 31, 33, 63, 64, 65, 4097, 9000, 9001} {
			for _, dq := range []bool{false, true} {
				w := randomWeight(uint64(n), n)
				q, err := Quantize(w, []int{n}, bs, dq)
				if err != nil {
					t.Fatal(err)
				}
				got, want := make([]float32, n), make([]float32, n)
				if err := q.Dequantize(got); err != nil {
					t.Fatal(err)
				}
				naiveDequantize(q, want)
				if i, ok := sameBits(got, want); !ok {
					t.Fatalf("bs %d n %d dq %v: [%d] = %v, per element %v", bs, n, dq, i, got[i], want[i])
				}
			}
		}
	}
}
