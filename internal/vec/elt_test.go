package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// reluSpecials are the values where max(x, 0) has a choice to make.
var reluSpecials = []uint32{
	0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x7f800000, 0xff800000,
	0x7fc00000, 0xffc00000, 0x7fc00001, 0xffc00123, 0x7f800001, 0xff800001,
	0x3f800000, 0xbf800000, 0x7f7fffff, 0xff7fffff,
}

// TestReLUMatchesGo: the kernels give the Go loops' bits for every length
// up to three vector steps (tails of every size), specials included, and
// write nothing past the end.
func TestReLUMatchesGo(t *testing.T) {
	t.Logf("AVX-512 kernels: %v", useReLU512)
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 2, 15, 16, 17, 31, 63, 64, 65, 100, 193, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			x, dy := make([]float32, n+16), make([]float32, n+16)
			for i := range x {
				if r.IntN(3) == 0 {
					x[i] = math.Float32frombits(reluSpecials[r.IntN(len(reluSpecials))])
				} else {
					x[i] = float32(r.NormFloat64())
				}
				dy[i] = math.Float32frombits(r.Uint32())
			}
			y, want := make([]float32, n+16), make([]float32, n+16)
			for i := range y {
				y[i], want[i] = 7, 7
			}
			ReLU(y[:n], x)
			reluRef(want[:n], x[:n])
			sameBits(t, "ReLU", y, want)
			d, dwant := make([]float32, n+16), make([]float32, n+16)
			for i := range d {
				d[i], dwant[i] = 7, 7
			}
			ReLUGrad(d[:n], y, dy)
			reluGradRef(dwant[:n], y[:n], dy[:n])
			sameBits(t, "ReLUGrad", d, dwant)
		})
	}
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d is %08x, want %08x", what, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
		}
	}
}

// TestAddMatchesGo: Add gives the Go loop's bits, NaN payloads included
// (random bit patterns hit every class), in place too.
func TestAddMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 15, 16, 17, 63, 64, 65, 200} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			a, b := make([]float32, n+16), make([]float32, n+16)
			for i := range a {
				if r.IntN(2) == 0 {
					a[i], b[i] = math.Float32frombits(r.Uint32()), math.Float32frombits(r.Uint32())
				} else {
					a[i], b[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
				}
			}
			y, want := make([]float32, n+16), make([]float32, n+16)
			for i := range y {
				y[i], want[i] = 7, 7
			}
			Add(y[:n], a, b)
			addRef(want[:n], a[:n], b[:n])
			sameBits(t, "Add", y, want)
			Add(a[:n], a, b) // in place
			sameBits(t, "Add in place", a[:n], want[:n])
		})
	}
}

// TestGather2: every other value of each row, for widths around the 16
// outputs of a vector step, from a source slice that ends at the last value
// read, writing nothing outside the rows' outputs.
func TestGather2(t *testing.T) {
	for _, cols := range []int{1, 2, 7, 14, 15, 16, 17, 31, 32, 33, 50} {
		for _, rows := range []int{1, 3} {
			t.Run(fmt.Sprintf("%dx%d", rows, cols), func(t *testing.T) {
				lds, ldd := 2*cols+5, cols+3
				src := make([]float32, (rows-1)*lds+2*cols-1)
				for i := range src {
					src[i] = float32(i)
				}
				dst, want := make([]float32, rows*ldd), make([]float32, rows*ldd)
				for i := range dst {
					dst[i], want[i] = -1, -1
				}
				Gather2(dst, ldd, src, lds, rows, cols)
				gather2Ref(want, ldd, src, lds, rows, cols)
				for r := range rows {
					for j := range cols {
						if want[r*ldd+j] != src[r*lds+2*j] {
							t.Fatalf("reference wrong at row %d, %d", r, j)
						}
					}
				}
				sameBits(t, "Gather2", dst, want)
			})
		}
	}
}

// TestAddTo2: the Go loop's sums, bit for bit (NaN payloads and -0 among
// the values), and nothing written to the odd positions or past the rows.
func TestAddTo2(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, cols := range []int{1, 2, 7, 8, 9, 14, 15, 16, 17, 31, 32, 33, 50} {
		for _, rows := range []int{1, 3} {
			t.Run(fmt.Sprintf("%dx%d", rows, cols), func(t *testing.T) {
				ldd, lds := 2*cols+4, cols+3
				dst := make([]float32, (rows-1)*ldd+2*cols-1)
				src := make([]float32, (rows-1)*lds+cols)
				for _, s := range [][]float32{dst, src} {
					for i := range s {
						if r.IntN(4) == 0 {
							s[i] = math.Float32frombits(reluSpecials[r.IntN(len(reluSpecials))])
						} else {
							s[i] = float32(r.NormFloat64())
						}
					}
				}
				want := append([]float32(nil), dst...)
				AddTo2(dst, ldd, src, lds, rows, cols)
				addTo2Ref(want, ldd, src, lds, rows, cols)
				sameBits(t, "AddTo2", dst, want)
			})
		}
	}
}

// TestAddReLUMatchesTwoPasses: the fused kernels give the bits of the two
// passes they replace (Add then ReLU; Add then ReLUGrad), on the kernels
// and on the Go loops, for tails of every size, specials and random bit
// patterns included (NaN payloads), in place too, writing nothing past n.
func TestAddReLUMatchesTwoPasses(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	val := func() float32 {
		switch r.IntN(4) {
		case 0:
			return math.Float32frombits(reluSpecials[r.IntN(len(reluSpecials))])
		case 1:
			return math.Float32frombits(r.Uint32())
		}
		return float32(r.NormFloat64())
	}
	for _, n := range []int{0, 1, 2, 15, 16, 17, 31, 63, 64, 65, 100, 193, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			a, b, y := make([]float32, n+16), make([]float32, n+16), make([]float32, n+16)
			for i := range a {
				a[i], b[i] = val(), val()
				if r.IntN(3) == 0 {
					b[i] = -a[i] // exact zeros of both signs
				}
				y[i] = max(val(), 0)
			}
			fill := func() []float32 {
				s := make([]float32, n+16)
				for i := range s {
					s[i] = 7
				}
				return s
			}
			want := fill()
			Add(want[:n], a, b)
			ReLU(want[:n], want[:n])
			got, ref := fill(), fill()
			SumReLU(got[:n], a, b)
			sumReLURef(ref[:n], a[:n], b[:n])
			sameBits(t, "SumReLU", got, want)
			sameBits(t, "sumReLURef", ref, want)
			inPlace := append([]float32(nil), a...)
			SumReLU(inPlace[:n], inPlace, b)
			sameBits(t, "SumReLU in place", inPlace[:n], want[:n])

			dwant := fill()
			Add(dwant[:n], a, b)
			ReLUGrad(dwant[:n], y, dwant[:n])
			dgot, dref := fill(), fill()
			SumReLUGrad(dgot[:n], y, a, b)
			sumReLUGradRef(dref[:n], y[:n], a[:n], b[:n])
			sameBits(t, "SumReLUGrad", dgot, dwant)
			sameBits(t, "sumReLUGradRef", dref, dwant)
			dIn := append([]float32(nil), b...)
			SumReLUGrad(dIn[:n], y, a, dIn)
			sameBits(t, "SumReLUGrad in place", dIn[:n], dwant[:n])
		})
	}
}
