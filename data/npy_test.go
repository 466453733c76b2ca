package data

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The fixtures in testdata/npy are written by make_fixtures.py with numpy.save;
// the want_* arrays are PyTorch's normalization of the same inputs.
func fixture(name string) string { return filepath.Join("testdata", "npy", name) }

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(fixture(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseFixture(t testing.TB, name string) *NPY {
	t.Helper()
	a, err := ParseNPY(name, readFixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// float32s decodes a little-endian float32 array.
func float32s(t testing.TB, a *NPY) []float32 {
	t.Helper()
	if a.Kind != 'f' || a.Size != 4 {
		t.Fatalf("%s, want float32", a.Dtype())
	}
	out := make([]float32, a.Len())
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(a.Data[4*i:]))
	}
	return out
}

func TestParseNPY(t *testing.T) {
	tests := []struct {
		file  string
		dtype string
		shape []int
		same  string // a fixture holding the same values in plain C order, little-endian
	}{
		{"x_f4_2d.npy", "float32", []int{5, 4}, ""},
		{"x_f4_3d.npy", "float32", []int{4, 3, 5}, ""},
		{"x_f4_4d.npy", "float32", []int{4, 3, 2, 2}, ""},
		{"x_u1_2d.npy", "uint8", []int{5, 4}, ""},
		{"x_u1_3d.npy", "uint8", []int{4, 3, 5}, ""},
		{"x_u1_4d.npy", "uint8", []int{4, 3, 2, 2}, ""},
		{"x_i8_tok.npy", "int64", []int{4, 6}, ""},
		{"x_i4_tok.npy", "int32", []int{4, 6}, ""},
		{"y5_i8.npy", "int64", []int{5}, ""},
		{"y4_i4.npy", "int32", []int{4}, ""},
		{"y4_u1.npy", "uint8", []int{4}, ""},
		{"bad_f8.npy", "float64", []int{5, 4}, ""},
		{"bad_f2.npy", "float16", []int{5, 4}, ""},
		{"bad_i2.npy", "int16", []int{4, 6}, ""},
		{"bad_bool.npy", "bool", []int{5, 4}, ""},
		{"bad_scalar.npy", "float32", []int{}, ""},
		{"bad_no_rows.npy", "float32", []int{0, 4}, ""},
		{"x_f4_2d_be.npy", "float32", []int{5, 4}, "x_f4_2d.npy"},
		{"x_i8_tok_be.npy", "int64", []int{4, 6}, "x_i8_tok.npy"},
		{"y4_i8_be.npy", "int64", []int{4}, "y4_i8.npy"},
		{"x_f4_4d_fortran.npy", "float32", []int{4, 3, 2, 2}, "x_f4_4d.npy"},
		{"x_u1_3d_fortran.npy", "uint8", []int{4, 3, 5}, "x_u1_3d.npy"},
		{"x_f4_2d_v2.npy", "float32", []int{5, 4}, "x_f4_2d.npy"},
		{"x_f4_2d_v3.npy", "float32", []int{5, 4}, "x_f4_2d.npy"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := readFixture(t, tt.file)
			a, err := ParseNPY(tt.file, b)
			if err != nil {
				t.Fatal(err)
			}
			if a.Dtype() != tt.dtype || !slices.Equal(a.Shape, tt.shape) || len(a.Data) != a.Len()*a.Size {
				t.Fatalf("%s %v with %d bytes; want %s %v", a.Dtype(), a.Shape, len(a.Data), tt.dtype, tt.shape)
			}
			if tt.same != "" {
				ref := parseFixture(t, tt.same)
				if !bytes.Equal(a.Data, ref.Data) {
					t.Fatalf("values differ from %s", tt.same)
				}
			}
			h, err := ReadNPYHeader(fixture(tt.file))
			if err != nil || h.Dtype() != tt.dtype || !slices.Equal(h.Shape, tt.shape) || h.Data != nil {
				t.Fatalf("ReadNPYHeader: %v, %v", h, err)
			}
		})
	}
	// Spot values, read independently of the parser.
	if got := float32s(t, parseFixture(t, "x_f4_2d_be.npy")); got[0] != float32s(t, parseFixture(t, "x_f4_2d.npy"))[0] || got[0] == 0 {
		t.Fatalf("big-endian first value %v", got[0])
	}
	f := parseFixture(t, "x_f4_4d_fortran.npy")
	raw := readFixture(t, "x_f4_4d_fortran.npy")
	// Element [0, 1, 0, 0] is the 2nd value in Fortran order (dim 0 has 4 rows: the 5th).
	if got, want := float32s(t, f)[4], math.Float32frombits(binary.LittleEndian.Uint32(raw[len(raw)-len(f.Data)+4*4:])); got != want {
		t.Fatalf("fortran [0,1,0,0] = %v; want %v", got, want)
	}
}

// EncodeNPY writes what numpy.save writes, byte for byte.
func TestEncodeNPYMatchesNumpy(t *testing.T) {
	for _, name := range []string{"x_f4_2d.npy", "x_f4_3d.npy", "x_f4_4d.npy", "x_u1_2d.npy", "x_i8_tok.npy", "x_i4_tok.npy", "y5_i8.npy", "y4_u1.npy", "bad_scalar.npy", "bad_no_rows.npy", "want_u1_4d_norm.npy"} {
		t.Run(name, func(t *testing.T) {
			b := readFixture(t, name)
			a, err := ParseNPY(name, b)
			if err != nil {
				t.Fatal(err)
			}
			if got := EncodeNPY(a); !bytes.Equal(got, b) {
				t.Fatalf("EncodeNPY differs from numpy.save:\n%q\n%q", got[:min(len(got), 128)], b[:min(len(b), 128)])
			}
		})
	}
	v := []float32{1, -2.5, float32(math.Inf(1)), 0}
	a, err := ParseNPY("logits", EncodeNPY(Float32NPY([]int{2, 2}, v)))
	if err != nil || !slices.Equal(a.Shape, []int{2, 2}) || !slices.Equal(float32s(t, a), v) {
		t.Fatalf("Float32NPY round trip: %v %v", a, err)
	}
	// A header too long for version 1.0 is written as 2.0.
	long := &NPY{Kind: 'u', Size: 1, Shape: make([]int, 64)}
	for i := range long.Shape {
		long.Shape[i] = 1
	}
	long.Data = []byte{7}
	if a, err := ParseNPY("long", EncodeNPY(long)); err != nil || len(a.Shape) != 64 || a.Data[0] != 7 {
		t.Fatalf("64 dimensions: %v", err)
	}
}

func TestParseNPYErrors(t *testing.T) {
	good := readFixture(t, "x_f4_2d.npy")
	header := func(h string) []byte { // a version 1.0 file with this header and 8 bytes of float32 data
		b := append([]byte(npyMagic), 1, 0)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(h)))
		return append(append(b, h...), make([]byte, 8)...)
	}
	tests := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"object", readFixture(t, "bad_object.npy"), "holds Python objects (dtype object), which numpy stores as a pickle; shrink never reads pickles"},
		{"structured", readFixture(t, "bad_structured.npy"), "a structured array (a record dtype with named fields)"},
		{"strings", readFixture(t, "bad_str.npy"), "dtype '<U3' holds strings, not numbers"},
		{"datetime", readFixture(t, "bad_datetime.npy"), "dtype '<M8[D]' holds dates or times"},
		{"truncated", readFixture(t, "bad_truncated.npy"), "truncated: the header declares [5, 4] float32 (80 bytes of data), the file holds 77"},
		{"trailing", readFixture(t, "bad_trailing.npy"), "2 bytes of trailing data after the [5, 4] float32 array"},
		{"version", readFixture(t, "bad_version.npy"), ".npy format version 4.0 is not supported (1.0, 2.0 and 3.0 are)"},
		{"magic", readFixture(t, "bad_magic.npy"), "not a NumPy .npy file"},
		{"npz", readFixture(t, "bad_archive.npz"), "a zip archive (an .npz file?)"},
		{"broken header", readFixture(t, "bad_header.npy"), "bad header"},
		{"empty", nil, "empty file, not a .npy file"},
		{"magic only", []byte(npyMagic), "truncated: 6 bytes"},
		{"short magic", []byte(npyMagic[:3]), "truncated: 3 bytes"},
		{"header past the end", good[:40], "truncated: the header is 118 bytes, the file holds 30"},
		{"v2 header too large", append([]byte(npyMagic), 2, 0, 0xff, 0xff, 0xff, 0xff), "header of 4294967295 bytes is too large"},
		{"not a dict", header("('<f4', False, (2,))"), "not a dictionary"},
		{"missing shape", header("{'descr': '<f4', 'fortran_order': False}"), "lacks the key 'shape'"},
		{"extra key", header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}"), "unexpected key 'x'"},
		{"duplicate key", header("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}"), "appears twice"},
		{"fortran not bool", header("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}"), "fortran_order must be True or False, got 0"},
		{"shape not tuple", header("{'descr': '<f4', 'fortran_order': False, 'shape': 2}"), "shape must be a tuple of integers, got 2"},
		{"negative dim", header("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}"), "non-negative integers, got -2 at position 0"},
		{"dim not int", header("{'descr': '<f4', 'fortran_order': False, 'shape': ('a',)}"), "got 'a' at position 0"},
		{"huge dim", header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999,)}"), "too large"},
		{"too long", header("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}"), "truncated: the header declares [3] float32 (12 bytes of data), the file holds 8"},
		{"large product", header("{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 65536, 65536)}"), "(1125899906842624 bytes of data), the file holds 8"},
		{"product wrapping to 0", header("{'descr': '<f4', 'fortran_order': False, 'shape': (1073741824, 1073741824, 16)}"), "far more than the 8 bytes"},
		{"overflowing product", header("{'descr': '<f4', 'fortran_order': False, 'shape': (2147483647, 2147483647, 2147483647)}"), "far more than the 8 bytes of data the file holds"},
		{"int overflow", header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}"), "out of range"},
		{"descr not string", header("{'descr': 4, 'fortran_order': False, 'shape': (2,)}"), "descr must be a type string"},
		{"unknown dtype", header("{'descr': '<x4', 'fortran_order': False, 'shape': (2,)}"), "unknown dtype '<x4'"},
		{"odd size", header("{'descr': '<f3', 'fortran_order': False, 'shape': (2,)}"), "dtype '<f3' is not supported"},
		{"long double", header("{'descr': '<f16', 'fortran_order': False, 'shape': (2,)}"), "dtype '<f16' is not supported"},
		{"nested", header("{'descr': '<f4', 'fortran_order': False, 'shape': ((((((((((2,),),),),),),),),),)}"), "nested too deeply"},
		{"unterminated", header("{'descr': '<f4"), "unterminated string"},
		{"escape", header(`{'descr': '<f\4', 'fortran_order': False, 'shape': (2,)}`), "escapes"},
		{"garbage after", header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x"), "after the value"},
		{"bad name", header("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,)}"), `unexpected name "Maybe"`},
		{"v3 bad utf8", append(append([]byte(npyMagic), 3, 0, 2, 0, 0, 0), 0xff, 0xfe), "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseNPY("f.npy", tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "f.npy: ") {
				t.Fatalf("got %v; want an error naming f.npy containing %q", err, tt.msg)
			}
		})
	}
	// Python 2's long integers and double quotes parse, keys in any order.
	b := header(`{"shape": (2L,), "fortran_order": True, "descr": "<f4"}`)
	if a, err := ParseNPY("f.npy", b); err != nil || !slices.Equal(a.Shape, []int{2}) {
		t.Fatalf("got %v, %v", a, err)
	}
	if _, err := ReadNPYHeader(fixture("bad_truncated.npy")); err == nil || !strings.Contains(err.Error(), "the file holds 77") {
		t.Fatalf("ReadNPYHeader of a truncated file: %v", err)
	}
}
