package qgemm

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// torchFixture is testdata/torch_quant.json (see make_fixtures.py).
type torchFixture struct {
	Observers []struct {
		Name        string
		ReduceRange bool `json:"reduce_range"`
		Shape       []int
		X           []float64
		Scale       float64
		ZeroPoint   int32 `json:"zero_point"`
		Q           []uint8
	}
	Linear []struct {
		PerChannel  bool `json:"per_channel"`
		In, Out     int
		Batch       int
		Weight      []int8
		WeightScale []float64 `json:"weight_scale"`
		Bias, X, Y  []float64
		Scale       float64
		ZeroPoint   int32 `json:"zero_point"`
	}
}

func loadFixture(t *testing.T) *torchFixture {
	t.Helper()
	b, err := os.ReadFile("testdata/torch_quant.json")
	if err != nil {
		t.Fatal(err)
	}
	var f torchFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("testdata/torch_quant.json: %v", err)
	}
	if len(f.Observers) == 0 || len(f.Linear) == 0 {
		t.Fatal("testdata/torch_quant.json: no cases")
	}
	return &f
}

func f32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// TestQuantizeMatchesTorch: scale, zero point and every code as
// MinMaxObserver(quint8, reduce_range) and quantize_per_tensor give them.
func TestQuantizeMatchesTorch(t *testing.T) {
	f := loadFixture(t)
	for _, name := range impls() {
		withImpl(t, name, func() {
			for _, c := range f.Observers {
				r := Full
				if c.ReduceRange {
					r = Reduced
				}
				m, k := c.Shape[0], c.Shape[1]
				q := make([]uint8, m*k)
				p := Quantize(m, k, f32s(c.X), k, r, q, k)
				if p.Scale != float32(c.Scale) || p.ZeroPoint != c.ZeroPoint {
					t.Errorf("%s %s/%v: params %v, torch %v %d", name, c.Name, c.ReduceRange, p, float32(c.Scale), c.ZeroPoint)
				}
				for i := range q {
					if q[i] != c.Q[i] {
						t.Errorf("%s %s/%v: code %d = %d, torch %d (x = %v)", name, c.Name, c.ReduceRange, i, q[i], c.Q[i], c.X[i])
						break
					}
				}
			}
		})
	}
}

// TestLinearMatchesTorch runs PyTorch's dynamic quantized Linear the qgemm
// way: Quantize (reduce_range), MatMul, Dequantize with the bias. The codes
// are PyTorch's (see make_fixtures.py), so only the float epilogue's
// rounding may differ: a few ulps of the outputs.
func TestLinearMatchesTorch(t *testing.T) {
	f := loadFixture(t)
	for _, name := range impls() {
		withImpl(t, name, func() {
			for ci, c := range f.Linear {
				w := Pack(c.Weight, c.Out, c.In)
				q := make([]uint8, c.Batch*c.In)
				p := Quantize(c.Batch, c.In, f32s(c.X), c.In, Reduced, q, c.In)
				if p.Scale != float32(c.Scale) || p.ZeroPoint != c.ZeroPoint {
					t.Fatalf("%s case %d: params %v, torch %v %d", name, ci, p, float32(c.Scale), c.ZeroPoint)
				}
				acc := make([]int32, c.Batch*c.Out)
				MatMul(c.Batch, q, c.In, Reduced, w, acc, c.Out)
				y := make([]float32, c.Batch*c.Out)
				Dequantize(c.Batch, acc, c.Out, p, w, f32s(c.WeightScale), f32s(c.Bias), y, c.Out)
				for i, want := range c.Y {
					if d := math.Abs(float64(y[i]) - want); d > 4e-7*max(1, math.Abs(want)) {
						t.Errorf("%s case %d (per channel %v): y[%d] = %v, torch %v", name, ci, c.PerChannel, i, y[i], want)
					}
				}
			}
		})
	}
}

// refCode is the quantization of one value, written out: the float32
// product, bounded, rounded half to even, shifted and clamped.
func refCode(x, inv float32, zp int32, r Range) uint8 {
	v := float64(x * inv)
	if math.IsNaN(v) || v < -(1<<24) {
		v = -(1 << 24)
	}
	v = math.Min(v, 1<<24)
	c := int64(math.RoundToEven(v)) + int64(zp)
	return uint8(min(max(c, 0), int64(r)))
}

// TestQuantizeImplsAgree: every path gives refCode's codes and the same
// parameters, for all tail lengths, ties, NaN, infinities and values far
// outside the range (QuantizeWith with a narrow scale).
func TestQuantizeImplsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e30, -1e30, 0.5, 1.5, 2.5, -0.5, -2.5}
	for _, k := range []int{1, 7, 31, 32, 33, 64, 95, 100, 257} {
		for _, m := range []int{1, 3} {
			ldx, ldq := k+3, k+1
			x := make([]float32, m*ldx)
			for i := range x {
				if rng.IntN(8) == 0 {
					x[i] = special[rng.IntN(len(special))]
				} else {
					x[i] = float32(rng.NormFloat64() * 3)
				}
			}
			finite := make([]float32, len(x))
			for i, v := range x {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || math.Abs(float64(v)) > 1e20 {
					v = 1
				}
				finite[i] = v
			}
			for _, r := range []Range{Full, Reduced} {
				var first []uint8
				var firstP Params
				for _, name := range impls() {
					withImpl(t, name, func() {
						q := make([]uint8, m*ldq)
						p := Quantize(m, k, finite, ldx, r, q, ldq)
						if first == nil {
							first, firstP = q, p
						} else if p != firstP {
							t.Fatalf("k=%d m=%d r=%d: %s params %v, %s %v", k, m, r, name, p, impls()[0], firstP)
						}
						// Codes, here and with a scale that sends most values out of range.
						for _, sp := range []Params{p, {Scale: 0.01, ZeroPoint: 3}} {
							QuantizeWith(m, k, x, ldx, sp, r, q, ldq)
							inv := 1 / sp.Scale
							for i := 0; i < m; i++ {
								for j := 0; j < k; j++ {
									if w := refCode(x[i*ldx+j], inv, sp.ZeroPoint, r); q[i*ldq+j] != w {
										t.Fatalf("k=%d m=%d r=%d %s: code(%v) = %d, want %d", k, m, r, name, x[i*ldx+j], q[i*ldq+j], w)
									}
								}
							}
						}
					})
				}
			}
		}
	}
}

// TestDequantizeImplsAgree: the same bits on every path as the formula
// written out, for per-tensor and per-channel scales, with and without a
// bias, set, add and ReLU (NaN, zeros and infinities in the bias), sums
// beyond 2^24 (rounded when converted) included.
func TestDequantizeImplsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 5, 8, 9, 16, 33, 300} {
		m, k := 3, 10
		w := make([]int8, n*k)
		for i := range w {
			w[i] = int8(rng.IntN(256) - 128)
		}
		p := Pack(w, n, k)
		ldacc, ldy := n+2, n+1
		acc := make([]int32, m*ldacc)
		for i := range acc {
			acc[i] = int32(rng.Uint32() >> uint(rng.IntN(24)))
		}
		a := Params{Scale: 0.0371, ZeroPoint: 117}
		for _, perChannel := range []bool{false, true} {
			ws := []float32{0.0023}
			if perChannel {
				ws = make([]float32, n)
				for i := range ws {
					ws[i] = float32(rng.Float64() * 0.01)
				}
			}
			special := randFloats(rng, n) // NaN, zeros and infinities through the ReLU
			for o := range special {
				special[o] = []float32{float32(math.NaN()), float32(math.Copysign(0, -1)), 0, float32(math.Inf(-1)), float32(math.Inf(1)), special[o]}[o%6]
			}
			for _, bias := range [][]float32{nil, randFloats(rng, n), special} {
				for _, mode := range []string{"set", "add", "relu"} {
					add, relu := mode == "add", mode == "relu"
					y0 := randFloats(rng, m*ldy)
					want := append([]float32(nil), y0...)
					for i := 0; i < m; i++ {
						for o := 0; o < n; o++ {
							mult := a.Scale * ws[min(o, len(ws)-1)]
							b := float32(0)
							if bias != nil {
								b = bias[o]
							}
							v := float32(float32(acc[i*ldacc+o]-a.ZeroPoint*p.rowSum[o])*mult) + b
							if add {
								v = want[i*ldy+o] + v
							}
							if relu && !(v > 0) && v == v { // max(v, 0): NaN stays, -0 becomes +0
								v = 0
							}
							want[i*ldy+o] = v
						}
					}
					for _, name := range impls() {
						withImpl(t, name, func() {
							y := append([]float32(nil), y0...)
							if mode != "add" {
								// The precomputed epilogue gives the same bits.
								y2 := append([]float32(nil), y0...)
								NewEpilogue(a, p, ws, bias).Dequantize(m, acc, ldacc, y2, ldy, relu)
								for i := range y2 {
									if math.Float32bits(y2[i]) != math.Float32bits(want[i]) {
										t.Fatalf("%s n=%d perChannel=%v bias=%v %s (Epilogue): y[%d] = %v, want %v", name, n, perChannel, bias != nil, mode, i, y2[i], want[i])
									}
								}
							}
							switch mode {
							case "add":
								DequantizeAdd(m, acc, ldacc, a, p, ws, bias, y, ldy)
							case "relu":
								DequantizeReLU(m, acc, ldacc, a, p, ws, bias, y, ldy)
							default:
								Dequantize(m, acc, ldacc, a, p, ws, bias, y, ldy)
							}
							for i := range y {
								if math.Float32bits(y[i]) != math.Float32bits(want[i]) {
									t.Fatalf("%s n=%d perChannel=%v bias=%v %s: y[%d] = %v, want %v", name, n, perChannel, bias != nil, mode, i, y[i], want[i])
								}
							}
						})
					}
				}
			}
		}
	}
}

func randFloats(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func TestQuantizePanics(t *testing.T) {
	p := Pack(make([]int8, 6), 2, 3)
	cases := []struct {
		name string
		f    func()
	}{
		{"short x", func() { Quantize(2, 3, make([]float32, 5), 3, Full, make([]uint8, 6), 3) }},
		{"short q", func() { QuantizeWith(2, 3, make([]float32, 6), 3, Params{Scale: 1}, Full, make([]uint8, 5), 3) }},
		{"bad range", func() { Quantize(1, 3, make([]float32, 3), 3, 100, make([]uint8, 3), 3) }},
		{"small ldx", func() { Quantize(2, 3, make([]float32, 6), 2, Full, make([]uint8, 6), 3) }},
		{"scales", func() {
			Dequantize(1, make([]int32, 2), 2, Params{}, p, make([]float32, 3), nil, make([]float32, 2), 2)
		}},
		{"bias", func() {
			Dequantize(1, make([]int32, 2), 2, Params{}, p, []float32{1}, []float32{1}, make([]float32, 2), 2)
		}},
		{"short y", func() { Dequantize(2, make([]int32, 4), 2, Params{}, p, []float32{1}, nil, make([]float32, 3), 2) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			c.f()
		})
	}
}
