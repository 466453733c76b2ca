package qgemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestEpilogueOutput: every step combination of the fused output pass
// gives, on every implementation, the bits of the separate passes (the
// column route's Dequantize with the same weights, the norm's v·a + b, the
// add, Go's max, refCode), with
// zeros, NaN and values far out of the codes' range among them, on channel
// counts around the 4-channel groups and row lengths around the vector
// widths; the other bytes of the codes and the values between rows and
// planes stay untouched.
func TestEpilogueOutput(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	for _, o := range []int{1, 3, 6} {
		c, nt := 5, 2
		w := make([]int8, o*c*nt)
		for i := range w {
			w[i] = int8(rng.IntN(256) - 128)
		}
		f := PackTaps(w, o, c, nt)
		wScale, bias, scale, shift := make([]float32, o), make([]float32, o), make([]float32, o), make([]float32, o)
		for j := range wScale {
			wScale[j] = float32(rng.Float64() * 0.01)
			bias[j] = []float32{0, float32(math.NaN()), -1, 2.5}[rng.IntN(4)]
			scale[j], shift[j] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		a := Params{Scale: 0.0371, ZeroPoint: 117}
		e := NewTapsEpilogue(a, f, wScale, bias)
		// The column route's rescale of the same weights: w is [o][c·nt].
		col := NewEpilogue(a, Pack(w, o, c*nt), wScale, bias)
		for _, n := range []int{1, 7, 15, 16, 17, 28, 33} {
			for flags := 0; flags < 32; flags++ {
				if flags&(8|16) == 0 {
					continue // stores nothing
				}
				t.Run(fmt.Sprintf("o=%d/n=%d/flags=%05b", o, n, flags), func(t *testing.T) {
					m, ldacc, ldy, ldq := 3, n+5, n+2, 4*n+9
					ldc, planeY, groupQ := 3*ldacc+1, 3*ldy+4, 3*ldq+7
					acc := make([]int32, (o-1)*ldc+(m-1)*ldacc+n)
					for i := range acc {
						acc[i] = int32(rng.Uint32() >> uint(rng.IntN(28)))
						if rng.IntN(8) == 0 {
							acc[i] = 117 * f.RowSums()[0]
						}
					}
					res := make([]float32, (o-1)*planeY+(m-1)*ldy+n)
					for i := range res {
						res[i] = float32(rng.NormFloat64() * 10)
						if rng.IntN(10) == 0 {
							res[i] = float32(math.Inf(1 - 2*rng.IntN(2)))
						}
					}
					out := PlaneOutput{ReLU: flags&4 != 0, LdY: ldy, PlaneY: planeY, LdCodes: ldq, GroupCodes: groupQ,
						CodeParams: Params{Scale: 0.02, ZeroPoint: 9}, CodeRange: []Range{Full, Reduced}[rng.IntN(2)]}
					if flags&1 != 0 {
						out.Scale, out.Shift = scale, shift
					}
					if flags&2 != 0 {
						out.Res = res
					}
					// the separate passes
					want := make([]float32, len(res))
					for j := 0; j < o; j++ {
						// Channel j's sums in column j of an m·n × o product.
						wide := make([]int32, m*n*o)
						for i := 0; i < m; i++ {
							for k := 0; k < n; k++ {
								wide[(i*n+k)*o+j] = acc[j*ldc+i*ldacc+k]
							}
						}
						cols := make([]float32, m*n*o)
						col.Dequantize(m*n, wide, o, cols, o, false)
						for i := 0; i < m; i++ {
							for k := 0; k < n; k++ {
								want[j*planeY+i*ldy+k] = cols[(i*n+k)*o+j]
							}
						}
						for i := 0; i < m; i++ {
							for k := 0; k < n; k++ {
								at := j*planeY + i*ldy + k
								v := want[at]
								if out.Scale != nil {
									v = float32(v*scale[j]) + shift[j]
								}
								if out.Res != nil {
									v += res[at]
								}
								if out.ReLU {
									v = max(v, 0)
								}
								want[at] = v
							}
						}
					}
					for _, name := range impls() {
						withImpl(t, name, func() {
							var y []float32
							var q []uint8
							if flags&8 != 0 {
								y = make([]float32, len(res)+3)
								for i := range y {
									y[i] = -7
								}
								out.Y = y[:len(res)]
							}
							if flags&16 != 0 {
								last := o - 1
								q = make([]uint8, last/4*groupQ+last%4+(m-1)*ldq+4*n+5)
								for i := range q {
									q[i] = 0xaa
								}
								out.Codes = q[:last/4*groupQ+last%4+(m-1)*ldq+4*n-3]
							}
							e.Output(m, n, acc, ldacc, ldc, &out)
							wy := map[int]float32{}
							wq := map[int]uint8{}
							for j := 0; j < o; j++ {
								for i := 0; i < m; i++ {
									for k := 0; k < n; k++ {
										v := want[j*planeY+i*ldy+k]
										wy[j*planeY+i*ldy+k] = v
										wq[j/4*groupQ+j%4+i*ldq+4*k] = refCode(v, 1/out.CodeParams.Scale, out.CodeParams.ZeroPoint, out.CodeRange)
									}
								}
							}
							for i, g := range y {
								v, ok := wy[i]
								if !ok {
									v = -7
								}
								if math.Float32bits(g) != math.Float32bits(v) {
									t.Fatalf("%s: y[%d] = %v, want %v", name, i, g, v)
								}
							}
							for i, g := range q {
								v, ok := wq[i]
								if !ok {
									v = 0xaa
								}
								if g != v {
									t.Fatalf("%s: q[%d] = %d, want %d", name, i, g, v)
								}
							}
						})
					}
				})
			}
		}
	}
}

// BenchmarkEpilogueOutput times the output pass of one image on a pruned
// ResNet's planes (11 channels of 28×28 rows 30 apart, 25 of 14×14 rows
// 16 apart, 42 of 7×7 rows 9 apart): a block's first convolution (ReLU,
// codes only) and its second (norm, residual, ReLU, floats and codes).
func BenchmarkEpilogueOutput(b *testing.B) {
	for _, s := range []struct{ o, side int }{{11, 28}, {25, 14}, {42, 7}} {
		f := PackTaps(make([]int8, s.o), s.o, 1, 1)
		e := NewTapsEpilogue(Params{Scale: 0.03, ZeroPoint: 100}, f, []float32{0.01}, nil)
		wp := s.side + 2
		ldc := (s.side*wp + 31) / 32 * 32
		acc := make([]int32, s.o*ldc)
		for i := range acc {
			acc[i] = int32(i*37%1000 - 500)
		}
		plane := s.side * s.side
		y := make([]float32, s.o*plane)
		res := make([]float32, s.o*plane)
		gs := wp * wp
		codes := make([]uint8, (s.o+3)/4*gs*4)
		scale, shift := make([]float32, s.o), make([]float32, s.o)
		for _, full := range []bool{false, true} {
			o := PlaneOutput{ReLU: true, LdY: s.side, PlaneY: plane, Codes: codes, LdCodes: wp * 4, GroupCodes: gs * 4, CodeParams: Params{Scale: 0.05, ZeroPoint: 3}, CodeRange: Full}
			if full {
				o.Scale, o.Shift, o.Res, o.Y = scale, shift, res, y
			}
			b.Run(fmt.Sprintf("%dx%dx%d/full=%v", s.o, s.side, s.side, full), func(b *testing.B) {
				for range b.N {
					e.Output(s.side, s.side, acc, wp, ldc, &o)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*s.o*plane), "ns/value")
			})
		}
	}
}

// TestEpilogueOutputBadStrides: plane and group strides that would put a
// channel before its slice's start, or past its end, panic in Go on every
// implementation, before any kernel reads or writes there. Each slice
// starts inside a larger buffer so that a kernel writing out of bounds
// corrupts only the test's own memory (caught: the margin must stay
// untouched).
func TestEpilogueOutputBadStrides(t *testing.T) {
	const o, m, n, margin = 6, 2, 5, 256
	f := PackTaps(make([]int8, o), o, 1, 1)
	e := NewTapsEpilogue(Params{Scale: 0.03, ZeroPoint: 10}, f, []float32{0.01}, nil)
	good := func() (PlaneOutput, []int32, int) {
		ldc := m * n
		acc := make([]int32, margin+o*ldc)[margin:]
		y := make([]float32, margin+o*m*n)[margin:]
		codes := make([]uint8, margin+2*m*4*n)[margin:]
		return PlaneOutput{Y: y, LdY: n, PlaneY: m * n, Codes: codes, LdCodes: 4 * n, GroupCodes: m * 4 * n, CodeParams: Params{Scale: 0.05, ZeroPoint: 3}, CodeRange: Full}, acc, ldc
	}
	for _, tc := range []struct {
		name string
		bad  func(po *PlaneOutput, ldc *int)
	}{
		{"negative plane", func(po *PlaneOutput, _ *int) { po.PlaneY = -m * n }},
		{"negative acc plane", func(_ *PlaneOutput, ldc *int) { *ldc = -m * n }},
		{"negative group", func(po *PlaneOutput, _ *int) { po.GroupCodes = -m * 4 * n }},
		// Channel 3 at byte 3 lies past channel 5's 1·1+1 = 2.
		{"group of 1 byte", func(po *PlaneOutput, _ *int) { po.GroupCodes = 1; po.Codes = po.Codes[:2+(m-1)*4*n+4*n-3] }},
	} {
		for _, name := range impls() {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				withImpl(t, name, func() {
					po, acc, ldc := good()
					tc.bad(&po, &ldc)
					defer func() {
						if recover() == nil {
							t.Errorf("Output did not panic")
						}
					}()
					e.Output(m, n, acc, n, ldc, &po)
				})
			})
		}
	}
}
