package checkpoint

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Files written by Python (PyTorch 1.13 + stlite.py, see ../testdata/safetensors/README.md)
// must parse with the right names, dtypes, shapes, values and metadata, and survive
// Encode -> Read unchanged.
func TestPythonFiles(t *testing.T) {
	type want struct {
		name  string
		dtype DType
		shape []int
		// first and last elements: float32 bits for F32, values for ints
		first, last int64
	}
	tests := []struct {
		file    string
		names   int
		meta    map[string]string // a subset of the metadata
		tensors []want
	}{
		{
			file:  "mlp_s1.safetensors",
			names: 6,
			meta:  map[string]string{"call": "torch.manual_seed(1); fc1=nn.Linear(6,8); fc2=nn.Linear(8,12); fc3=nn.Linear(12,5)"},
			tensors: []want{
				{"fc1.weight", DTypeF32, []int{8, 6}, 1045915491, int64(math.Float32bits(0.120067745))},
				{"fc1.bias", DTypeF32, []int{8}, 3186716032, int64(math.Float32bits(0.3272471))},
				{"fc2.weight", DTypeF32, []int{12, 8}, 3163004318, int64(math.Float32bits(0.34543073))},
				{"fc3.weight", DTypeF32, []int{5, 12}, 3189307244, int64(math.Float32bits(-0.20334522))},
				{"fc3.bias", DTypeF32, []int{5}, 1041269652, int64(math.Float32bits(0.22865635))},
			},
		},
		{
			file:  "quant_sym_per_tensor.safetensors",
			names: 12,
			meta:  map[string]string{"inputs": "mlp_s1.safetensors", "informative": "no"},
			tensors: []want{
				{"fc1.weight", DTypeI8, []int{8, 6}, 67, 38},
				{"fc2.weight", DTypeI8, []int{12, 8}, -6, 125},
				{"fc3.weight", DTypeI8, []int{5, 12}, -66, -90},
				{"fc1.weight_scale", DTypeF32, []int{1}, 994961101, 994961101},
				{"fc1.weight_zero_point", DTypeI8, []int{1}, 0, 0},
				{"fc2.bias", DTypeF32, []int{12}, 3173477115, int64(math.Float32bits(0.22899322))},
			},
		},
		{
			file:  "prune_random_counts.safetensors",
			names: 3,
			meta:  map[string]string{"inputs": "mlp_s1.safetensors"},
			tensors: []want{
				{"fc1.weight_pruned_count", DTypeI64, []int{1}, 24, 24},
				{"fc2.weight_pruned_count", DTypeI64, []int{1}, 48, 48},
				{"fc3.weight_pruned_count", DTypeI64, []int{1}, 30, 30},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(testdataDir, tc.file)
			f, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Tensors) != tc.names || !slices.IsSorted(f.Names()) {
				t.Fatalf("names %q", f.Names())
			}
			for k, v := range tc.meta {
				if f.Metadata[k] != v {
					t.Errorf("metadata %q = %q, want %q", k, f.Metadata[k], v)
				}
			}
			for _, w := range tc.tensors {
				x, ok := f.Get(w.name)
				if !ok {
					t.Fatalf("no tensor %q", w.name)
				}
				if x.DType != w.dtype || !slices.Equal(x.Shape, w.shape) {
					t.Fatalf("%s: %s %v, want %s %v", w.name, x.DType, x.Shape, w.dtype, w.shape)
				}
				var first, last int64
				switch x.DType {
				case DTypeF32:
					v, err := x.Float32s()
					if err != nil {
						t.Fatal(err)
					}
					first, last = int64(math.Float32bits(v[0])), int64(math.Float32bits(v[len(v)-1]))
				case DTypeI8:
					v, err := x.Int8s()
					if err != nil {
						t.Fatal(err)
					}
					first, last = int64(v[0]), int64(v[len(v)-1])
				case DTypeI64:
					v, err := x.Int64s()
					if err != nil {
						t.Fatal(err)
					}
					first, last = v[0], v[len(v)-1]
				}
				if first != w.first || last != w.last {
					t.Errorf("%s: first, last = %d, %d; want %d, %d", w.name, first, last, w.first, w.last)
				}
			}
			// Encode(Read(f)) reads back to the same tensors, and since these files
			// were written by stlite.py, which lays the data out in name order too, the
			// data buffers are identical (only the metadata key order differs).
			b := mustMarshal(t, f)
			g, err := readBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffFiles(f, g); d != "" {
				t.Fatal(d)
			}
			orig, _ := os.ReadFile(path)
			origData := orig[8+le64(orig):]
			if !bytes.Equal(b[8+le64(b):], origData) {
				t.Error("data buffer differs from Python's")
			}
		})
	}
}

// handmade.safetensors is written by hand (see the README): whitespace and newlines in
// the header, keys out of order, fields in odd orders, \u escapes and a surrogate pair,
// a header length that is not a multiple of 8, unaligned data, a scalar, an empty tensor,
// BOOL and BF16.
func TestHandmadeFile(t *testing.T) {
	f, err := ReadFile(filepath.Join(testdataDir, "handmade.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"a\tscalar", "b.bool", "c.empty", "d.bf16", "z.u16"}
	if got := f.Names(); !slices.Equal(got, wantNames) {
		t.Fatalf("names %q", got)
	}
	if f.Metadata["note"] != "hand-made \u00e9 \U0001F600 caf\u00e9" || f.Metadata["empty"] != "" || len(f.Metadata) != 2 {
		t.Fatalf("metadata %q", f.Metadata)
	}
	want := []Tensor{
		{Name: "a\tscalar", DType: DTypeF64, Shape: []int{}, Data: le(-2.5)},
		{Name: "b.bool", DType: DTypeBool, Shape: []int{3}, Data: []byte{1, 0, 1}},
		{Name: "c.empty", DType: DTypeF32, Shape: []int{0, 4}, Data: nil},
		{Name: "d.bf16", DType: DTypeBF16, Shape: []int{2, 3}, Data: le([]uint16{0x3F80, 0xC000, 0x3F00, 0, 0x7F80, 0x7FC0})},
		{Name: "z.u16", DType: DTypeU16, Shape: []int{1}, Data: le(uint16(65535))},
	}
	if d := diffFiles(&File{Metadata: f.Metadata, Tensors: want}, f); d != "" {
		t.Fatal(d)
	}
	scalar, _ := f.Get("a\tscalar")
	if v, err := scalar.Float64s(); err != nil || len(v) != 1 || v[0] != -2.5 || scalar.NumElements() != 1 {
		t.Fatalf("scalar: %v %v", v, err)
	}
	// Canonical re-encoding reads back the same.
	g, err := readBytes(mustMarshal(t, f))
	if err != nil {
		t.Fatal(err)
	}
	if d := diffFiles(f, g); d != "" {
		t.Fatal(d)
	}
}
