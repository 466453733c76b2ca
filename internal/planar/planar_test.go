package planar

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// naive is the convolution in float64, straight from its definition.
func naive(s Shape, nb int, x, w []float32) []float64 {
	oh0, ow0, st := s.OH(), s.OW(), s.stride()
	ph, pw := (s.KH-1)/2, (s.KW-1)/2
	y := make([]float64, nb*s.O*oh0*ow0)
	for b := 0; b < nb; b++ {
		for o := 0; o < s.O; o++ {
			for oh := 0; oh < oh0; oh++ {
				for ow := 0; ow < ow0; ow++ {
					var sum float64
					for ic := 0; ic < s.C; ic++ {
						for ki := 0; ki < s.KH; ki++ {
							for kj := 0; kj < s.KW; kj++ {
								ih, iw := oh*st+ki-ph, ow*st+kj-pw
								if ih < 0 || ih >= s.H || iw < 0 || iw >= s.W {
									continue
								}
								sum += float64(x[((b*s.C+ic)*s.H+ih)*s.W+iw]) * float64(w[((o*s.C+ic)*s.KH+ki)*s.KW+kj])
							}
						}
					}
					y[((b*s.O+o)*oh0+oh)*ow0+ow] = sum
				}
			}
		}
	}
	return y
}

func randoms(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// shapes are edge sizes: one channel, one pixel, odd widths, channel counts
// around the tiles' widths, 7x7 images shorter than a vector, 1x1 and 5x3
// kernels, and channel counts whose taps gemm.Taps cuts into blocks.
var shapes = []struct {
	s  Shape
	nb int
}{
	{Shape{C: 1, H: 1, W: 1, O: 1, KH: 3, KW: 3}, 1},
	{Shape{C: 1, H: 28, W: 28, O: 11, KH: 3, KW: 3}, 2},
	{Shape{C: 11, H: 28, W: 28, O: 12, KH: 3, KW: 3}, 1},
	{Shape{C: 3, H: 5, W: 7, O: 8, KH: 3, KW: 3}, 3},
	{Shape{C: 25, H: 14, W: 14, O: 23, KH: 3, KW: 3}, 2},
	{Shape{C: 49, H: 7, W: 7, O: 42, KH: 3, KW: 3}, 5},
	{Shape{C: 64, H: 7, W: 7, O: 64, KH: 3, KW: 3}, 2},
	{Shape{C: 5, H: 9, W: 4, O: 17, KH: 1, KW: 1}, 3},
	{Shape{C: 4, H: 6, W: 11, O: 3, KH: 5, KW: 3}, 2},
	{Shape{C: 2, H: 2, W: 3, O: 1, KH: 5, KW: 5}, 1},
	// Strides: ResNet's downsampling (3x3 and its 1x1 shortcut), odd
	// sizes whose phase planes are short, stride 3.
	{Shape{C: 11, H: 28, W: 28, O: 19, KH: 3, KW: 3, Stride: 2}, 2},
	{Shape{C: 25, H: 14, W: 14, O: 49, KH: 3, KW: 3, Stride: 2}, 3},
	{Shape{C: 25, H: 14, W: 14, O: 42, KH: 1, KW: 1, Stride: 2}, 3},
	{Shape{C: 32, H: 14, W: 14, O: 64, KH: 3, KW: 3, Stride: 2}, 2},
	{Shape{C: 3, H: 7, W: 9, O: 5, KH: 3, KW: 3, Stride: 2}, 3},
	{Shape{C: 2, H: 8, W: 7, O: 3, KH: 5, KW: 3, Stride: 3}, 2},
	{Shape{C: 4, H: 1, W: 1, O: 2, KH: 3, KW: 3, Stride: 2}, 2},
}

func forward(t *testing.T, name string, direct bool, order Order, s Shape, nb int, x, w []float32) []float32 {
	t.Helper()
	prev := useImpl(name)
	defer useImpl(prev)
	defer func(m int) { directMin = m }(directMin)
	directMin = 1 << 30
	if direct {
		directMin = 0
	}
	c := New(s, w, order)
	// 40 sentinels past y: a kernel that stored the lanes past the last
	// position would change them.
	n := nb * s.O * s.OH() * s.OW()
	buf := make([]float32, n+40)
	for i := range buf {
		buf[i] = 12345
	}
	y := buf[:n:n]
	var sc Scratch
	c.Forward(x, nb, y, &sc)
	for i, v := range buf[n:] {
		if v != 12345 {
			t.Fatalf("%s: the value %d past y became %v", name, i, v)
		}
	}
	// A second call reuses the scratch and must not see the first's data.
	y2 := make([]float32, len(y))
	c.Forward(x, nb, y2, &sc)
	for i := range y {
		if math.Float32bits(y[i]) != math.Float32bits(y2[i]) {
			t.Fatalf("%s: a second call gave y[%d] = %v, the first %v", name, i, y2[i], y[i])
		}
	}
	return y
}

// randomShapes are 40 seeded random shapes: any size from 1, kernels 1x1
// to 5x5 (not square too), strides 1 to 3.
func randomShapes() []struct {
	s  Shape
	nb int
} {
	rng := rand.New(rand.NewPCG(5, 6))
	var out []struct {
		s  Shape
		nb int
	}
	for range 40 {
		s := Shape{C: 1 + rng.IntN(20), H: 1 + rng.IntN(20), W: 1 + rng.IntN(20), O: 1 + rng.IntN(20),
			KH: 1 + 2*rng.IntN(3), KW: 1 + 2*rng.IntN(3), Stride: 1 + rng.IntN(3)}
		out = append(out, struct {
			s  Shape
			nb int
		}{s, 1 + rng.IntN(4)})
	}
	return out
}

// TestForward checks every implementation against the definition, and
// that they agree bit for bit.
func TestForward(t *testing.T) {
	impls := []string{"purego"}
	if asmImpl() != nil {
		impls = append(impls, "avx512")
	}
	for i, tc := range append(shapes, randomShapes()...) {
		t.Run(fmt.Sprintf("%+v/nb%d", tc.s, tc.nb), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			x := randoms(rng, tc.nb*tc.s.C*tc.s.H*tc.s.W)
			w := randoms(rng, tc.s.O*tc.s.C*tc.s.KH*tc.s.KW)
			want := naive(tc.s, tc.nb, x, w)
			for _, order := range []Order{TapsFirst, ChannelsFirst} {
				var first []float32
				for _, name := range impls {
					for _, direct := range []bool{false, true} {
						got := forward(t, name, direct, order, tc.s, tc.nb, x, w)
						for j, v := range got {
							// Float32 rounding of sums of up to 576 products of
							// values of magnitude ~1.
							if d := math.Abs(float64(v) - want[j]); d > 1e-4*(1+math.Abs(want[j]))*math.Sqrt(float64(tc.s.C*tc.s.KH*tc.s.KW)) {
								t.Fatalf("%s (order %d, direct %v): y[%d] = %v, want %v", name, order, direct, j, v, want[j])
							}
						}
						if first == nil {
							first = got
							continue
						}
						for j := range got {
							if math.Float32bits(got[j]) != math.Float32bits(first[j]) {
								t.Fatalf("%s (order %d, direct %v): y[%d] = %v (%08x), %s gave %v (%08x)", name, order, direct, j, got[j], math.Float32bits(got[j]), impls[0], first[j], math.Float32bits(first[j]))
							}
						}
					}
				}
			}
		})
	}
}

// TestFMA32 compares fma32 with the exact a·b + c rounded once (math/big),
// on values chosen to make double rounding likely: c far below a·b, sums
// that land halfway between float32 values, signed zeros, infinities.
func TestFMA32(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cases := [][3]float32{
		{0, -1, 0}, {0, 1, float32(math.Copysign(0, -1))}, {float32(math.Copysign(0, -1)), 2, float32(math.Copysign(0, -1))},
		{1, 1, float32(math.Inf(1))}, {float32(math.Inf(-1)), 0, 1}, {3e38, 10, -3e38},
		{1 + 1.0/(1<<23), 1 + 1.0/(1<<23), -1}, {1e-30, 1e-30, 1e-45},
	}
	for range 200000 {
		a := float32(rng.NormFloat64())
		b := float32(rng.NormFloat64())
		c := a * b
		// Perturb c by a few units in the last place and scale it, so a·b
		// and c cancel or c sits at a rounding boundary of the sum.
		c = math.Float32frombits(math.Float32bits(c) + uint32(rng.IntN(5)) - 2)
		switch rng.IntN(4) {
		case 0:
			c = -c
		case 1:
			c = float32(math.Ldexp(float64(c), -24-rng.IntN(30)))
		case 2:
			c = float32(math.Ldexp(float64(-c), -rng.IntN(3)))
		}
		cases = append(cases, [3]float32{a, b, c})
	}
	for _, tc := range cases {
		a, b, c := tc[0], tc[1], tc[2]
		got := fma32(a, b, c)
		var want float32
		p := float64(a) * float64(b)
		if math.IsInf(p+float64(c), 0) || math.IsNaN(p+float64(c)) || p+float64(c) == 0 {
			want = float32(p + float64(c)) // exact cases: IEEE sums of these are exact or special
		} else {
			e := new(big.Float).SetPrec(200).SetFloat64(p)
			e.Add(e, new(big.Float).SetPrec(200).SetFloat64(float64(c)))
			want, _ = e.Float32()
		}
		if math.Float32bits(got) != math.Float32bits(want) && !(math.IsNaN(float64(got)) && math.IsNaN(float64(want))) {
			t.Fatalf("fma32(%v, %v, %v) = %v (%08x), want %v (%08x)", a, b, c, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
}

// TestBadCallsPanic: a shape planar does not compute, short filters, or
// x and y shorter than the images they are said to hold must panic in Go,
// before any kernel reads or writes past a slice.
func TestBadCallsPanic(t *testing.T) {
	s := Shape{C: 3, H: 20, W: 20, O: 5, KH: 3, KW: 3} // 400 positions: in place
	st := Shape{C: 3, H: 9, W: 7, O: 5, KH: 3, KW: 3, Stride: 2}
	w := make([]float32, 5*3*9)
	cases := []struct {
		name string
		f    func()
	}{
		{"even kernel", func() { New(Shape{C: 1, H: 4, W: 4, O: 1, KH: 2, KW: 3}, w, TapsFirst) }},
		{"no channels", func() { New(Shape{C: 0, H: 4, W: 4, O: 1, KH: 3, KW: 3}, w, TapsFirst) }},
		{"negative stride", func() { New(Shape{C: 1, H: 4, W: 4, O: 1, KH: 3, KW: 3, Stride: -1}, w, TapsFirst) }},
		{"short filters", func() { New(s, w[:len(w)-1], TapsFirst) }},
		{"no images", func() { New(s, w, TapsFirst).Forward(make([]float32, 1200), 0, make([]float32, 2000), &Scratch{}) }},
		{"short x in place", func() {
			New(s, w, TapsFirst).Forward(make([]float32, 2*1200-1), 2, make([]float32, 2*2000), &Scratch{})
		}},
		{"short y in place", func() {
			New(s, w, TapsFirst).Forward(make([]float32, 2*1200), 2, make([]float32, 2*2000-1), &Scratch{})
		}},
		{"short x strided", func() {
			New(st, w, ChannelsFirst).Forward(make([]float32, 3*189-1), 3, make([]float32, 3*5*20), &Scratch{})
		}},
		{"short y strided", func() {
			New(st, w, ChannelsFirst).Forward(make([]float32, 3*189), 3, make([]float32, 3*5*20-1), &Scratch{})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", tc.name)
				}
			}()
			tc.f()
		})
	}
}

// TestKernelsStayInSlices runs seeded random shapes (in place and on
// copies, both orders, every implementation) with x inside NaNs and y
// between sentinels: a lane read before or after x would turn an output
// into NaN, a store outside y would change a sentinel.
func TestKernelsStayInSlices(t *testing.T) {
	impls := []string{"purego"}
	if asmImpl() != nil {
		impls = append(impls, "avx512")
	}
	defer func(m int) { directMin = m }(directMin)
	const guard = 100
	rng := rand.New(rand.NewPCG(99, 1))
	for range 40 {
		s := Shape{C: 1 + rng.IntN(12), H: 1 + rng.IntN(40), W: 1 + rng.IntN(40), O: 1 + rng.IntN(17),
			KH: 1 + 2*rng.IntN(4), KW: 1 + 2*rng.IntN(4), Stride: rng.IntN(4)}
		nb := 1 + rng.IntN(4)
		xb := make([]float32, nb*s.C*s.H*s.W+2*guard)
		for i := range xb {
			xb[i] = float32(math.NaN())
		}
		x := xb[guard : len(xb)-guard : len(xb)-guard]
		copy(x, randoms(rng, len(x)))
		w := randoms(rng, s.O*s.C*s.KH*s.KW)
		n := nb * s.O * s.OH() * s.OW()
		t.Run(fmt.Sprintf("%+v/nb%d", s, nb), func(t *testing.T) {
			for _, name := range impls {
				for _, order := range []Order{TapsFirst, ChannelsFirst} {
					for _, direct := range []bool{false, true} {
						directMin = 1 << 30
						if direct {
							directMin = 0
						}
						prev := useImpl(name)
						c := New(s, w, order)
						useImpl(prev)
						yb := make([]float32, n+2*guard)
						for i := range yb {
							yb[i] = 12345
						}
						y := yb[guard : guard+n : guard+n]
						c.Forward(x, nb, y, &Scratch{})
						for i := range guard {
							if yb[i] != 12345 || yb[guard+n+i] != 12345 {
								t.Fatalf("%s (order %d, direct %v): a value around y changed", name, order, direct)
							}
						}
						for j, v := range y {
							if math.IsNaN(float64(v)) {
								t.Fatalf("%s (order %d, direct %v): y[%d] is NaN: a lane read outside x", name, order, direct, j)
							}
						}
					}
				}
			}
		})
	}
}
