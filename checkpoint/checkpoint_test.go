package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/safetensors")

func TestDTypeSize(t *testing.T) {
	want := map[DType]int{
		"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
		"U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F128": 0, "f32": 0, "": 0,
	}
	for d, size := range want {
		if got := d.Size(); got != size {
			t.Errorf("%q.Size() = %d, want %d", d, got, size)
		}
		if d.Valid() != (size != 0) {
			t.Errorf("%q.Valid() = %v", d, d.Valid())
		}
	}
	if len(DTypes) != 13 {
		t.Errorf("len(DTypes) = %d, want 13", len(DTypes))
	}
}

// TestRoundTripEveryDType writes one tensor of each dtype and shape and reads it back.
func TestRoundTripEveryDType(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][]int{nil, {1}, {7}, {2, 3}, {3, 1, 4}, {0}, {2, 0, 5}}
	for _, dt := range DTypes {
		for _, shape := range shapes {
			t.Run(string(dt)+"/"+shapeName(shape), func(t *testing.T) {
				n, _ := numElements(shape)
				data := make([]byte, n*dt.Size())
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
				in := &File{
					Metadata: map[string]string{"dtype": string(dt)},
					Tensors: []Tensor{
						{Name: "x", DType: dt, Shape: shape, Data: data},
						U8("pad", []int{3}, []byte{1, 2, 3}), // odd-sized neighbour
					},
				}
				b := mustMarshal(t, in)
				out, err := readBytes(b)
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				if d := diffFiles(in, out); d != "" {
					t.Fatal(d)
				}
				if got := mustMarshal(t, out); !bytes.Equal(got, b) {
					t.Fatal("re-encoding the read file changed its bytes")
				}
			})
		}
	}
}

func shapeName(s []int) string {
	if len(s) == 0 {
		return "scalar"
	}
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, "x")
}

func TestTypedAccessors(t *testing.T) {
	f32 := []float32{1, -2.5, float32(math.Inf(1)), math.Float32frombits(0x7fc00001), math.SmallestNonzeroFloat32, float32(math.Copysign(0, -1))}
	f64 := []float64{1, -2.5, math.Inf(-1), math.MaxFloat64}
	i8 := []int8{-128, -1, 0, 1, 127}
	u8 := []byte{0, 1, 254, 255}
	i32 := []int32{math.MinInt32, -1, 0, math.MaxInt32}
	i64 := []int64{math.MinInt64, -1, 0, math.MaxInt64}
	tests := []struct {
		name   string
		tensor Tensor
		raw    []byte // expected little-endian bytes
		check  func(*Tensor) error
	}{
		{"F32", F32("a", []int{2, 3}, f32), le(f32), func(t *Tensor) error { return eq(t.Float32s, f32) }},
		{"F64", F64("a", []int{4}, f64), le(f64), func(t *Tensor) error { return eq(t.Float64s, f64) }},
		{"I8", I8("a", []int{5}, i8), le(i8), func(t *Tensor) error { return eq(t.Int8s, i8) }},
		{"U8", U8("a", []int{2, 2}, u8), le(u8), func(t *Tensor) error { return eq(t.Uint8s, u8) }},
		{"I32", I32("a", []int{4}, i32), le(i32), func(t *Tensor) error { return eq(t.Int32s, i32) }},
		{"I64", I64("a", []int{2, 2}, i64), le(i64), func(t *Tensor) error { return eq(t.Int64s, i64) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.tensor.DType) != tc.name {
				t.Fatalf("dtype %s", tc.tensor.DType)
			}
			if !bytes.Equal(tc.tensor.Data, tc.raw) {
				t.Fatalf("Data = %x, want %x", tc.tensor.Data, tc.raw)
			}
			if err := tc.tensor.Validate(); err != nil {
				t.Fatal(err)
			}
			// Through a file, so the accessor sees a subslice of the shared buffer.
			g, err := readBytes(mustMarshal(t, &File{Tensors: []Tensor{U8("0", []int{1}, []byte{9}), tc.tensor}}))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := g.Get("a")
			if err := tc.check(got); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("wrong dtype", func(t *testing.T) {
		x := I8("w", []int{1}, []int8{1})
		if _, err := x.Float32s(); err == nil || !strings.Contains(err.Error(), `tensor "w" is I8, not F32`) {
			t.Fatalf("err = %v", err)
		}
		y := F32("w", []int{2}, []float32{1, 2})
		if _, err := y.Int64s(); err == nil || !strings.Contains(err.Error(), "is F32, not I64") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("data does not match shape", func(t *testing.T) {
		x := F32("w", []int{3}, []float32{1, 2})
		if _, err := x.Float32s(); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("constructor copies", func(t *testing.T) {
		shape := []int{2}
		v := []float32{1, 2}
		x := F32("c", shape, v)
		shape[0], v[0] = 5, 9
		got, err := x.Float32s()
		if err != nil || x.Shape[0] != 2 || got[0] != 1 {
			t.Fatalf("constructor aliases its arguments: %v %v %v", x.Shape, got, err)
		}
		got[1] = 7
		if again, _ := x.Float32s(); again[1] != 2 {
			t.Fatal("Float32s aliases Data")
		}
	})
}

// eq compares a decoded slice bit for bit with want.
func eq[T comparable](get func() ([]T, error), want []T) error {
	got, err := get()
	if err != nil {
		return err
	}
	if !bytes.Equal(le(got), le(want)) {
		return errors.New("decoded values differ")
	}
	return nil
}

func TestNumElements(t *testing.T) {
	tests := []struct {
		shape []int
		want  int
	}{
		{nil, 1}, {[]int{}, 1}, {[]int{0}, 0}, {[]int{2, 3, 4}, 24}, {[]int{-1}, -1},
		{[]int{math.MaxInt, 2}, -1}, {[]int{1 << 20, 1 << 20, 1 << 20, 1 << 20}, -1}, {[]int{0, math.MaxInt, 2}, 0},
	}
	for _, tc := range tests {
		if got := (&Tensor{Shape: tc.shape}).NumElements(); got != tc.want {
			t.Errorf("NumElements(%v) = %d, want %d", tc.shape, got, tc.want)
		}
	}
}

func TestFileHelpers(t *testing.T) {
	f := &File{}
	f.Set(F32("b", []int{1}, []float32{1}))
	f.Set(F32("a", []int{1}, []float32{2}))
	f.Set(F32("b", []int{2}, []float32{3, 4})) // replaces
	if got := f.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Names = %q", got)
	}
	b, ok := f.Get("b")
	if !ok || b.Shape[0] != 2 {
		t.Fatalf("Get(b) = %v, %v", b, ok)
	}
	if _, ok := f.Get("c"); ok {
		t.Fatal("Get(c) found something")
	}
	// Read returns the tensors sorted by name.
	g, err := readBytes(mustMarshal(t, f))
	if err != nil {
		t.Fatal(err)
	}
	if g.Tensors[0].Name != "a" || g.Tensors[1].Name != "b" || g.Metadata == nil {
		t.Fatalf("Read order %q, metadata %v", g.Names(), g.Metadata)
	}
	// Shared buffer, but capped slices: appending to one tensor must not clobber the next.
	a0, _ := g.Get("a")
	_ = append(a0.Data, 0xff, 0xff, 0xff, 0xff)
	if v, _ := g.Tensors[1].Float32s(); v[0] != 3 {
		t.Fatal("append to a tensor's Data overwrote its neighbour")
	}
}

// TestDeterministic: same tensors and metadata, in any order, give the same bytes.
func TestDeterministic(t *testing.T) {
	base := goldenFile()
	want := mustMarshal(t, base)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20 {
		f := goldenFile() // a fresh map each time: iteration order differs
		rng.Shuffle(len(f.Tensors), func(i, j int) { f.Tensors[i], f.Tensors[j] = f.Tensors[j], f.Tensors[i] })
		if got := mustMarshal(t, f); !bytes.Equal(got, want) {
			t.Fatalf("shuffle %d: different bytes", i)
		}
		var buf bytes.Buffer
		if err := Encode(&buf, f); err != nil || !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("Encode differs from Marshal (err %v)", err)
		}
	}
	// Re-encoding what was read is byte-identical.
	g, err := readBytes(want)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustMarshal(t, g); !bytes.Equal(got, want) {
		t.Fatal("Encode(Read(b)) != b")
	}
	// Nil and empty metadata encode the same (no __metadata__ key).
	a := mustMarshal(t, &File{Tensors: []Tensor{F32("x", nil, []float32{1})}})
	b := mustMarshal(t, &File{Metadata: map[string]string{}, Tensors: []Tensor{F32("x", nil, []float32{1})}})
	if !bytes.Equal(a, b) || bytes.Contains(a, []byte(metadataKey)) {
		t.Fatalf("nil vs empty metadata: %q vs %q", a, b)
	}
}

// TestLayout checks the exact header format: sorted keys, compact JSON, space padding to
// a multiple of 8, contiguous data in name order.
func TestLayout(t *testing.T) {
	f := &File{
		Metadata: map[string]string{"z": "1", "a": "<&>\u2028"},
		Tensors: []Tensor{
			U8("b", []int{3}, []byte{4, 5, 6}),
			U8("a", []int{1, 2}, []byte{1, 2}),
			F32("c", nil, []float32{1}),
		},
	}
	b := mustMarshal(t, f)
	n := int(le64(b[:8]))
	if n%8 != 0 {
		t.Fatalf("header length %d is not a multiple of 8", n)
	}
	hdr := string(b[8 : 8+n])
	wantJSON := `{"__metadata__":{"a":"<&>` + "\u2028" + `","z":"1"},` +
		`"a":{"dtype":"U8","shape":[1,2],"data_offsets":[0,2]},` +
		`"b":{"dtype":"U8","shape":[3],"data_offsets":[2,5]},` +
		`"c":{"dtype":"F32","shape":[],"data_offsets":[5,9]}}`
	if strings.TrimRight(hdr, " ") != wantJSON {
		t.Fatalf("header\n%s\nwant\n%s", hdr, wantJSON)
	}
	if len(hdr)-len(wantJSON) >= 8 {
		t.Fatalf("%d bytes of padding", len(hdr)-len(wantJSON))
	}
	if data := b[8+n:]; !bytes.Equal(data, []byte{1, 2, 4, 5, 6, 0, 0, 0x80, 0x3f}) {
		t.Fatalf("data = %x", data)
	}
}

func le64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func TestGolden(t *testing.T) {
	path := filepath.Join(testdataDir, "golden_all_dtypes.safetensors")
	got := mustMarshal(t, goldenFile())
	if *update {
		if _, err := WriteFile(path, goldenFile()); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Marshal(goldenFile()) differs from %s (run with -update if the change is intended)", path)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffFiles(goldenFile(), f); d != "" {
		t.Fatal(d)
	}
}

func TestEncodeRejects(t *testing.T) {
	ok := F32("ok", []int{2}, []float32{1, 2})
	tests := []struct {
		name string
		f    *File
		want string
	}{
		{"duplicate names", &File{Tensors: []Tensor{ok, ok}}, `duplicate tensor name "ok"`},
		{"data too short", &File{Tensors: []Tensor{F32("w", []int{8, 6}, make([]float32, 47))}},
			`tensor "w": shape [8 6] of F32 needs 192 bytes but Data has 188`},
		{"data too long", &File{Tensors: []Tensor{{Name: "w", DType: "U8", Shape: []int{1}, Data: []byte{1, 2}}}},
			"needs 1 bytes but Data has 2"},
		{"unknown dtype", &File{Tensors: []Tensor{{Name: "w", DType: "F8", Shape: []int{1}, Data: []byte{1}}}},
			`unknown dtype "F8"`},
		{"empty dtype", &File{Tensors: []Tensor{{Name: "w", Shape: []int{1}, Data: []byte{1}}}}, `unknown dtype ""`},
		{"negative dim", &File{Tensors: []Tensor{{Name: "w", DType: "U8", Shape: []int{-1}}}}, "negative dim"},
		{"overflow", &File{Tensors: []Tensor{{Name: "w", DType: "U8", Shape: []int{1 << 30, 1 << 30, 1 << 30}}}}, "overflows"},
		{"byte size overflow", &File{Tensors: []Tensor{{Name: "w", DType: "F64", Shape: []int{math.MaxInt / 4}}}}, "byte size overflows"},
		{"reserved name", &File{Tensors: []Tensor{{Name: "__metadata__", DType: "U8", Shape: []int{0}}}}, "reserved"},
		{"bad UTF-8 name", &File{Tensors: []Tensor{{Name: "a\xffb", DType: "U8", Shape: []int{0}}}}, "not valid UTF-8"},
		{"bad UTF-8 metadata", &File{Metadata: map[string]string{"k": "\xc3"}}, `metadata "k"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Encode(&buf, tc.f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Encode error = %v, want it to contain %q", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Fatalf("Encode wrote %d bytes before failing", buf.Len())
			}
			if _, err := Marshal(tc.f); err == nil {
				t.Fatal("Marshal accepted it")
			}
			path := filepath.Join(t.TempDir(), "x.safetensors")
			if _, err := WriteFile(path, tc.f); err == nil {
				t.Fatal("WriteFile accepted it")
			}
			if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 0 {
				t.Fatalf("WriteFile left %v behind", ents)
			}
		})
	}
}

func TestWriteFileAndDigest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	f := goldenFile()
	sum, err := WriteFile(path, f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw := sha256.Sum256(b)
	if sum != hex.EncodeToString(raw[:]) {
		t.Fatalf("WriteFile returned %s, file hashes to %x", sum, raw)
	}
	if d, err := Digest(path); err != nil || d != sum {
		t.Fatalf("Digest = %s, %v; want %s", d, err, sum)
	}
	if !bytes.Equal(b, mustMarshal(t, f)) {
		t.Fatal("WriteFile bytes differ from Marshal")
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	// Overwrite atomically with other content; no temp files remain.
	f2 := &File{Tensors: []Tensor{I64("n", []int{1}, []int64{7})}}
	sum2, err := WriteFile(path, f2)
	if err != nil || sum2 == sum {
		t.Fatalf("second WriteFile: %s, %v", sum2, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(ents))
	}
	g, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffFiles(f2, g); d != "" {
		t.Fatal(d)
	}
	// Same content again: same digest.
	if sum3, err := WriteFile(path, f2); err != nil || sum3 != sum2 {
		t.Fatalf("rewrite: %s, %v; want %s", sum3, err, sum2)
	}
	if _, err := WriteFile(filepath.Join(dir, "missing", "x.safetensors"), f2); err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
	if _, err := Digest(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Digest of a missing file succeeded")
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadFile(filepath.Join(dir, "nope.safetensors")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := ReadFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: %v", err)
	}
	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(bad, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(bad)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "checkpoint: "+bad+": file is 5 bytes") {
		t.Fatalf("malformed file: %v", err)
	}
}

// shortReader claims more bytes than it has: an I/O error, not a malformed file.
func TestReadShortReader(t *testing.T) {
	b := mustMarshal(t, &File{Tensors: []Tensor{F32("x", []int{4}, []float32{1, 2, 3, 4})}})
	// Tell Read the file is larger than the reader: the header then does not tile.
	if _, err := Read(bytes.NewReader(b), int64(len(b)+4)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("larger size: %v", err)
	}
	// A reader that fails.
	_, err := Read(failingReader{}, int64(len(b)))
	if err == nil || errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "reading the header length") {
		t.Fatalf("failing reader: %v", err)
	}
	// A reader that ends early inside the data.
	_, err = Read(truncReader{bytes.NewReader(b), int64(len(b) - 1)}, int64(len(b)))
	if err == nil || errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("truncated reader: %v", err)
	}
}

type failingReader struct{}

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("disk on fire") }

type truncReader struct {
	r *bytes.Reader
	n int64
}

func (t truncReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > t.n {
		p = p[:max(0, t.n-off)]
		n, _ := t.r.ReadAt(p, off)
		return n, io.EOF
	}
	return t.r.ReadAt(p, off)
}
