package nf4

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
)

// The vectors of testdata/nf4/make_nf4.py: bitsandbytes' algorithm in numpy. For each case
// NAME: NAME.input (the float32 weight), NAME.nf4.* (the bitsandbytes tensors of
// quantize_4bit without double quantization, and NAME.nf4.dequant) and NAME.dq.* (with it,
// plus NAME.dq.absmax_dequant).

// vectorsPath is testdata/nf4/vectors.safetensors at the repository root. (testkit has a
// Root too, but importing it would build gorgonia into this small package's tests.)
func vectorsPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "nf4", "vectors.safetensors")
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 19)) }

func vectors(t testing.TB) *checkpoint.File {
	t.Helper()
	f, err := checkpoint.ReadFile(vectorsPath())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func floatsOf(t testing.TB, f *checkpoint.File, name string) ([]float32, []int) {
	t.Helper()
	tn, ok := f.Get(name)
	if !ok {
		t.Fatalf("vectors: no tensor %q", name)
	}
	v, err := tn.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v, tn.Shape
}

// cases lists the vector cases: the names before ".input".
func cases(f *checkpoint.File) []string {
	var out []string
	for _, n := range f.Names() {
		if c, ok := strings.CutSuffix(n, ".input"); ok {
			out = append(out, c)
		}
	}
	return out
}

// blocksizeOf reads a case's block size from its quant-state JSON.
func blocksizeOf(t *testing.T, f *checkpoint.File, prefix string) int {
	t.Helper()
	tn, _ := f.Get(prefix + suffixState)
	js, _ := tn.Uint8s()
	st, err := parseState(js)
	if err != nil {
		t.Fatal(err)
	}
	return st.Blocksize
}

func sameBits(a, b []float32) (int, bool) {
	if len(a) != len(b) {
		return -1, false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i, false
		}
	}
	return 0, true
}

func TestMapsMatchBitsandbytes(t *testing.T) {
	f := vectors(t)
	code, _ := floatsOf(t, f, "maps.nf4")
	if i, ok := sameBits(code, Code[:]); !ok {
		t.Errorf("Code[%d] differs from get_4bit_type(\"nf4\")", i)
	}
	th, _ := floatsOf(t, f, "maps.nf4_thresholds")
	if i, ok := sameBits(th, thresholds[:]); !ok {
		t.Errorf("threshold %d = %v, dQuantizeNF4's literal is %v", i, thresholds[i], th[i])
	}
	dm, _ := floatsOf(t, f, "maps.dynamic")
	m := DynamicMap()
	if i, ok := sameBits(dm, m[:]); !ok {
		t.Errorf("DynamicMap()[%d] = %v, create_dynamic_map() has %v", i, m[i], dm[i])
	}
	// The published map (bitsandbytes' create_dynamic_map() as copied into other
	// projects), as little-endian float32: the reference script checks the same digest.
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, m[:])
	if got := sha256.Sum256(b.Bytes()); hex.EncodeToString(got[:]) != "e732639a65f497b4ad684bb166a4467708255edd5207757de8b8f0c7e1fda89c" {
		t.Errorf("DynamicMap() sha256 %x differs from the published map", got)
	}
	if m[dynamicZero] != 0 || Code[zeroCode] != 0 {
		t.Error("the zero codes do not hold 0")
	}
}

// TestVectors quantizes each case's input and compares every tensor with bitsandbytes'
// bit for bit (codes, absmax, nested codes and absmax, maps, the JSON bytes), then the
// dequantized values.
func TestVectors(t *testing.T) {
	f := vectors(t)
	names := cases(f)
	if len(names) < 10 {
		t.Fatalf("only %d cases in the vectors", len(names))
	}
	for _, c := range names {
		w, shape := floatsOf(t, f, c+".input")
		for _, layout := range []string{"nf4", "dq"} {
			t.Run(c+"/"+layout, func(t *testing.T) {
				prefix := c + "." + layout + ".weight"
				q, err := Quantize(w, shape, blocksizeOf(t, f, prefix), layout == "dq")
				if err != nil {
					t.Fatal(err)
				}
				ts, err := q.Tensors(prefix)
				if err != nil {
					t.Fatal(err)
				}
				for i := range ts {
					compareTensor(t, &ts[i], f)
				}
				want, _ := floatsOf(t, f, c+"."+layout+".dequant")
				got := make([]float32, q.Len())
				if err := q.Dequantize(got); err != nil {
					t.Fatal(err)
				}
				if i, ok := sameBits(got, want); !ok {
					t.Errorf("dequantized[%d] = %v, bitsandbytes %v (w = %v)", i, got[i], want[i], w[i])
				}
				if layout == "dq" {
					wantAbs, _ := floatsOf(t, f, c+".dq.absmax_dequant")
					gotAbs := make([]float32, q.Blocks())
					if err := q.AbsmaxInto(gotAbs); err != nil {
						t.Fatal(err)
					}
					if i, ok := sameBits(gotAbs, wantAbs); !ok {
						t.Errorf("dequantized absmax[%d] = %v, bitsandbytes %v", i, gotAbs[i], wantAbs[i])
					}
				}

				// Reading the reference's tensors gives the same weight.
				r, err := FromTensors(f, prefix)
				if err != nil {
					t.Fatal(err)
				}
				r2 := make([]float32, r.Len())
				if err := r.Dequantize(r2); err != nil {
					t.Fatal(err)
				}
				if i, ok := sameBits(r2, want); !ok {
					t.Errorf("read back: dequantized[%d] = %v, want %v", i, r2[i], want[i])
				}
			})
		}
	}
}

// compareTensor fails unless want holds a tensor of got's name, dtype, shape and bytes.
func compareTensor(t *testing.T, got *checkpoint.Tensor, want *checkpoint.File) {
	t.Helper()
	w, ok := want.Get(got.Name)
	if !ok {
		t.Errorf("%s: written, but bitsandbytes has no such tensor", got.Name)
		return
	}
	if got.DType != w.DType || !slices.Equal(got.Shape, w.Shape) {
		t.Errorf("%s: %s %v, bitsandbytes %s %v", got.Name, got.DType, got.Shape, w.DType, w.Shape)
		return
	}
	if bytes.Equal(got.Data, w.Data) {
		return
	}
	if strings.HasSuffix(got.Name, suffixState) {
		t.Errorf("%s: JSON\n%s\nbitsandbytes\n%s", got.Name, got.Data, w.Data)
		return
	}
	size := got.DType.Size()
	for i := 0; i < len(got.Data); i += size {
		if !bytes.Equal(got.Data[i:i+size], w.Data[i:i+size]) {
			t.Errorf("%s: element %d is % x, bitsandbytes % x", got.Name, i/size, got.Data[i:i+size], w.Data[i:i+size])
			return
		}
	}
}

// TestNF4CodeIsNearest checks the code search against a brute-force nearest value on
// seeded random inputs and the NF4 values' neighbours: away from the 15 midpoints the
// nearest Code wins; on a midpoint (x == threshold) the lower one.
func TestNF4CodeIsNearest(t *testing.T) {
	r := newRand(3)
	xs := []float32{-1, 1, 0, float32(math.Copysign(0, -1)), -1.5, 1.5}
	for _, c := range Code {
		xs = append(xs, c, math.Nextafter32(c, -2), math.Nextafter32(c, 2))
	}
	for range 200000 {
		xs = append(xs, float32(r.Float64()*2.2-1.1))
	}
	for _, x := range xs {
		got := nf4Code(x)
		if k := slices.Index(thresholds[:], x); k >= 0 {
			if int(got) != k {
				t.Errorf("x = threshold %d (%v): code %d, want the lower, %d", k, x, got, k)
			}
			continue
		}
		best := 0
		for k := range Code {
			if math.Abs(float64(x)-float64(Code[k])) < math.Abs(float64(x)-float64(Code[best])) {
				best = k
			}
		}
		if int(got) != best {
			t.Fatalf("x = %v: code %d (%v), nearest is %d (%v)", x, got, Code[got], best, Code[best])
		}
	}
	if c := nf4Code(float32(math.NaN())); c != 0 {
		t.Errorf("NaN: code %d, dQuantizeNF4 gives 0", c)
	}
}

// TestDQuantizeIsNearest: the 8-bit search returns a nearest map entry, except on a
// float32 midpoint of two neighbours as the kernel computes it ((a+b)*0.5f, which may lie
// an ulp off the real midpoint), where it returns the even one of the two: the index its
// binary search ends on.
func TestDQuantizeIsNearest(t *testing.T) {
	m := DynamicMap()
	var mids [255]float32
	for k := range mids {
		mids[k] = (m[k] + m[k+1]) * 0.5
	}
	r := newRand(5)
	for i := range 100000 {
		x := float32(r.Float64()*2.1 - 1.05)
		if i < len(mids) {
			x = mids[i]
		}
		got := int(dQuantize(&m, x))
		if k := slices.Index(mids[:], x); k >= 0 {
			if want := k + k%2; got != want {
				t.Errorf("x = %v, the midpoint of %d and %d: code %d, want the even one, %d", x, k, k+1, got, want)
			}
			continue
		}
		d := func(k int) float64 { return math.Abs(float64(x) - float64(m[k])) }
		for k := range m {
			if d(k) < d(got) {
				t.Fatalf("x = %v: code %d (%v), %d (%v) is nearer", x, got, m[got], k, m[k])
			}
		}
	}
}
