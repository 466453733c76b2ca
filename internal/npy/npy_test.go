package npy

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// arange is testdata/gen.py's arange: 0..n-1 minus n/2, cast, or even-ness for bool.
func arange(shape []int, dtype string) any {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := func(i int) int { return i - n/2 }
	switch dtype {
	case "float32":
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(v(i))
		}
		return d
	case "float64":
		d := make([]float64, n)
		for i := range d {
			d[i] = float64(v(i))
		}
		return d
	case "int8":
		d := make([]int8, n)
		for i := range d {
			d[i] = int8(v(i))
		}
		return d
	case "uint8":
		d := make([]uint8, n)
		for i := range d {
			d[i] = uint8(v(i))
		}
		return d
	case "int32":
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(v(i))
		}
		return d
	case "int64":
		d := make([]int64, n)
		for i := range d {
			d[i] = int64(v(i))
		}
		return d
	case "bool":
		d := make([]bool, n)
		for i := range d {
			d[i] = v(i)%2 == 0
		}
		return d
	}
	panic(dtype)
}

func TestReadNumPyFiles(t *testing.T) {
	tests := []struct {
		file  string
		shape []int
		dtype string
		v1    bool // written by np.save as version 1.0, so Write must give the same bytes
	}{
		{"f4_2x3.npy", []int{2, 3}, "float32", true},
		{"f8_4.npy", []int{4}, "float64", true},
		{"i1_3x1x2.npy", []int{3, 1, 2}, "int8", true},
		{"u1_0x3.npy", []int{0, 3}, "uint8", true},
		{"i8_2x2.npy", []int{2, 2}, "int64", true},
		{"b1_5.npy", []int{5}, "bool", true},
		{"f4_v2_3.npy", []int{3}, "float32", false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			a, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if a.DType() != tt.dtype || !reflect.DeepEqual(a.Shape, tt.shape) {
				t.Fatalf("got %s %v, want %s %v", a.DType(), a.Shape, tt.dtype, tt.shape)
			}
			if want := arange(tt.shape, tt.dtype); !reflect.DeepEqual(a.Data, want) {
				t.Errorf("data %v, want %v", a.Data, want)
			}
			if !tt.v1 {
				return
			}
			var buf bytes.Buffer
			if err := Write(&buf, a); err != nil {
				t.Fatal(err)
			}
			want, _ := os.ReadFile(path)
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("Write differs from np.save:\n got %q\nwant %q", buf.Bytes(), want)
			}
		})
	}
	t.Run("scalar", func(t *testing.T) {
		a, err := ReadFile("testdata/i4_scalar.npy")
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Shape) != 0 || !reflect.DeepEqual(a.Data, []int32{-7}) {
			t.Errorf("got shape %v data %v, want a scalar -7", a.Shape, a.Data)
		}
	})
}

func TestReadNPZ(t *testing.T) {
	got, err := ReadNPZ("testdata/pair.npz")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d arrays, want x and y", len(got))
	}
	if x := got["x"]; x == nil || !reflect.DeepEqual(x.Data, arange([]int{2, 3}, "float32")) {
		t.Errorf("x = %+v", x)
	}
	if y := got["y"]; y == nil || !reflect.DeepEqual(y.Data, arange([]int{4}, "int64")) {
		t.Errorf("y = %+v", y)
	}
}

func TestRoundTrip(t *testing.T) {
	nan := math.Float32frombits(0x7fc00123)
	for _, a := range []*Array{
		{Shape: []int{2, 2}, Data: []float32{1.5, -0, nan, float32(math.Inf(-1))}},
		{Shape: []int{}, Data: []int64{math.MinInt64}},
		{Shape: []int{3, 0, 1000000}, Data: []uint8{}},
		{Shape: []int{1, 2, 1}, Data: []int32{math.MaxInt32, math.MinInt32}},
	} {
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			t.Fatal(err)
		}
		k, _ := encode(a.Data)
		if off := buf.Len() - a.Len()*k.Size; off%64 != 0 {
			t.Errorf("%v: the data starts at byte %d, want a multiple of 64 as NumPy writes", a.Shape, off)
		}
		b, err := Read(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(b.Shape, a.Shape) || !sameBits(a.Data, b.Data) {
			t.Errorf("wrote %v %v, read %v %v", a.Shape, a.Data, b.Shape, b.Data)
		}
	}
}

func sameBits(a, b any) bool {
	var x, y bytes.Buffer
	ea, _ := encode(a)
	eb, _ := encode(b)
	Write(&x, &Array{Shape: []int{len(ea.Data) / ea.Size}, Data: a})
	Write(&y, &Array{Shape: []int{len(eb.Data) / eb.Size}, Data: b})
	return reflect.TypeOf(a) == reflect.TypeOf(b) && bytes.Equal(x.Bytes(), y.Bytes())
}

func TestErrors(t *testing.T) {
	hdr := func(h string, data string) string {
		return "\x93NUMPY\x01\x00" + string([]byte{byte(len(h)), byte(len(h) >> 8)}) + h + data
	}
	tests := []struct {
		name, file, want string
	}{
		{"magic", "GIF89a not an array", "not a NumPy .npy file"},
		{"zip", "PK\x03\x04 not an array", "an .npz file?"},
		{"version", "\x93NUMPY\x04\x00\x00\x00", "format version 4.0 is not supported"},
		{"complex", hdr("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", "\x00\x00\x00\x00\x00\x00\x00\x00"), "dtype complex64 is not supported"},
		{"truncated", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "\x00\x00\x00\x00"), "truncated"},
		{"huge", hdr("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", ""), "too large"},
		{"missing key", hdr("{'descr': '<f4', 'shape': (1,), }", ""), "the header lacks the key 'fortran_order'"},
		{"negative", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", ""), "non-negative integers"},
		{"string dtype", hdr("{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", ""), `dtype '<U3' holds strings`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if err := Write(&bytes.Buffer{}, &Array{Shape: []int{3}, Data: []float32{1}}); err == nil || !strings.Contains(err.Error(), "holds 3 elements, data has 1") {
		t.Errorf("Write with a short slice: %v", err)
	}
	if err := Write(&bytes.Buffer{}, &Array{Shape: []int{1}, Data: []uint16{1}}); err == nil || !strings.Contains(err.Error(), "cannot write []uint16") {
		t.Errorf("Write of []uint16: %v", err)
	}
}

// TestByteOrderAndFortran: big-endian and Fortran-ordered files read as the
// values numpy means, in C order.
func TestByteOrderAndFortran(t *testing.T) {
	hdr := func(h string, data string) string {
		return "\x93NUMPY\x01\x00" + string([]byte{byte(len(h)), byte(len(h) >> 8)}) + h + data
	}
	a, err := Read(strings.NewReader(hdr("{'descr': '>i2', 'fortran_order': False, 'shape': (1,), }", "\x00\x01")))
	if err == nil {
		t.Fatalf("int16 read as %v, want an unsupported dtype", a.Data)
	}
	a, err = Read(strings.NewReader(hdr("{'descr': '>i4', 'fortran_order': False, 'shape': (1,), }", "\x00\x00\x01\x02")))
	if err != nil || !reflect.DeepEqual(a.Data, []int32{0x0102}) {
		t.Errorf("big-endian int32: %v, %v", a, err)
	}
	// [[1, 2, 3], [4, 5, 6]] stored column by column.
	a, err = Read(strings.NewReader(hdr("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 3), }", "\x01\x04\x02\x05\x03\x06")))
	if err != nil || !reflect.DeepEqual(a.Data, []uint8{1, 2, 3, 4, 5, 6}) {
		t.Errorf("Fortran order: %v, %v", a, err)
	}
}

func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.npy")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			t.Fatalf("read %v %s but cannot write it: %v", a.Shape, a.DType(), err)
		}
		c, err := Read(&buf)
		if err != nil {
			t.Fatalf("cannot read what Write wrote: %v", err)
		}
		if !reflect.DeepEqual(a.Shape, c.Shape) || !sameBits(a.Data, c.Data) {
			t.Fatalf("round trip changed %v %v into %v %v", a.Shape, a.Data, c.Shape, c.Data)
		}
	})
}
