package planar

import (
	"math"
	"os"
	"sync/atomic"

	"github.com/shrink-ml/shrink/internal/gemm"
)

// call is one kernel call: tiles tiles of r output channels × v vectors of
// 16 positions, the first at position 0 of x and y, each advancing v·16
// positions. The sum runs over groups g < taps of k steps: for step ic < k
// and lane q, the input value is x[xi + ic·ldx + offs[g] + q] if bit q%16
// of masks[moffs[g] + q/16] is set, else 0; the filter value of output i
// is w[(g·k+ic)·r+i].
// Output i of position q is y[yi + i·ldy + q]: the chain's sum stored, or
// added to y's value when acc, if bit q%16 of smasks[q/16] is set (else
// y is neither read nor written there).
type call struct {
	tiles, taps, k int
	offs           []int
	masks          []uint16
	moffs          []int
	smasks         []uint16
	n              int // positions below n may be stored
	x              []float32
	xi, ldx        int
	w              []float32
	y              []float32
	yi, ldy        int
	acc            bool
	args           kernelArgs // the asm kernels' copy of the call
}

// kernelArgs is a call as the asm kernels read it (asm/gen.go's offsets):
// pointers at the first values they address, strides in bytes.
type kernelArgs struct {
	tiles, taps int
	offs        *int
	masks       *uint16
	moffs       *int
	k           int
	x           *float32
	ldx         int
	w           *float32
	y           *float32
	ldy         int
	acc         int
	smasks      *uint16
}

// impl is a family of kernels: tiles of up to rmax output channels by v
// vectors. Every implementation gives the same bits.
type impl struct {
	name    string
	v, rmax int
	run     func(r, v int, c *call) // v: the impl's v, or 1
}

// goV and goRMax are the pure-Go kernel's tile: any works, as long as the
// driver's tiling is exercised like the asm one's (several tiles, a
// ragged one).
const goV, goRMax = 2, 6

var goImpl = impl{name: "purego", v: goV, rmax: goRMax, run: runGo}

// runGo is the kernels' contract (call) in scalar Go, for tiles of v
// vectors (goV or 1).
func runGo(r, v int, c *call) {
	lanes := v * 16
	acc := make([]float32, r*lanes)
	for tile := 0; tile < c.tiles; tile++ {
		q0 := tile * lanes
		clear(acc)
		for t := 0; t < c.taps; t++ {
			for ic := 0; ic < c.k; ic++ {
				base := c.xi + ic*c.ldx + c.offs[t] + q0
				wr := c.w[(t*c.k+ic)*r : (t*c.k+ic+1)*r]
				for l := 0; l < lanes; l++ {
					var in float32
					if c.masks[c.moffs[t]+(q0+l)/16]&(1<<((q0+l)%16)) != 0 {
						in = c.x[base+l]
					}
					for i, wv := range wr {
						acc[i*lanes+l] = fma32(in, wv, acc[i*lanes+l])
					}
				}
			}
		}
		for i := 0; i < r; i++ {
			for l, v := range acc[i*lanes : (i+1)*lanes] {
				if c.smasks[(q0+l)/16]&(1<<((q0+l)%16)) == 0 {
					continue
				}
				out := c.y[c.yi+i*c.ldy+q0:]
				if c.acc {
					v += out[l]
				}
				out[l] = v
			}
		}
	}
}

// fma32 is a·b + c rounded once to float32, as VFMADD231PS computes it.
// The product is exact in float64; the sum is rounded to float64 by round
// to odd (the nearest value, moved one unit towards the exact sum when that
// is inexact and its last bit even), which a second rounding to float32's
// 24 bits never turns into a double rounding error (53 ≥ 2·24 + 2).
func fma32(a, b, c float32) float32 {
	p, z := float64(a)*float64(b), float64(c)
	s := p + z
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return float32(s)
	}
	// s + e = p + z exactly (Knuth's TwoSum).
	bv := s - p
	e := (p - (s - bv)) + (z - bv)
	if bits := math.Float64bits(s); e != 0 && bits&1 == 0 {
		if (e > 0) == (s > 0) {
			bits++
		} else {
			bits--
		}
		s = math.Float64frombits(bits)
	}
	return float32(s)
}

// active is the implementation in use, chosen at start-up; only tests and
// benchmarks change it.
var active atomic.Pointer[impl]

// envVar overrides the choice: "purego" or "avx512" (if the CPU has it);
// "off" keeps the kernels but asks callers not to use them (Off).
// SHRINK_GEMM=purego, shrink's switch for all of its assembly, also
// selects Go.
const envVar = "SHRINK_PLANAR"

func init() {
	active.Store(chooseImpl(gemm.Requested(envVar)))
}

// off is SHRINK_PLANAR=off: callers keep the paths planar replaced (nn's
// tall layout and chunked product), to compare.
var off = os.Getenv(envVar) == "off"

// Off reports whether SHRINK_PLANAR=off asked callers not to use planar.
func Off() bool { return off }

func chooseImpl(want string) *impl {
	if want == "purego" {
		return &goImpl
	}
	if im := asmImpl(); im != nil {
		return im
	}
	return &goImpl
}

// Impl reports the kernels in use: "avx512" or "purego". Conv values keep
// the kernels they were made with.
func Impl() string { return active.Load().name }

func useImpl(name string) (prev string) {
	prev = active.Load().name
	active.Store(chooseImpl(name))
	return prev
}
