//go:build amd64 && !purego

package planar

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// kernels lists the asm kernels by vector count, then by r-1.
var kernels = map[int][]func(*byte){
	2: {planarR1V2, planarR2V2, planarR3V2, planarR4V2, planarR5V2, planarR6V2, planarR7V2, planarR8V2, planarR9V2, planarR10V2, planarR11V2, planarR12V2, planarR13V2, planarR14V2, planarR15V2},
	3: {planarR1V3, planarR2V3, planarR3V3, planarR4V3, planarR5V3, planarR6V3, planarR7V3, planarR8V3, planarR9V3},
	4: {planarR1V4, planarR2V4, planarR3V4, planarR4V4, planarR5V4, planarR6V4, planarR7V4},
}

// asmV is the tile's vector count: see BenchmarkTiles.
const asmV = 4

var avx512Impl = impl{name: "avx512", v: asmV, rmax: len(kernels[asmV]), run: runAsm}

// asmImpl is the AVX-512 implementation if this CPU has AVX-512F.
func asmImpl() *impl {
	if cpu.X86.HasAVX512F {
		return &avx512Impl
	}
	return nil
}

func runAsm(r int, c *call) { runKernel(kernels[asmV][r-1], asmV, r, c) }

// runKernel checks that the call's reads and writes stay within its
// slices (the masked-off lanes are not read, but their addresses must be
// in x too), then runs f.
func runKernel(f func(*byte), v, r int, c *call) {
	n := c.tiles * v * 16
	lo, hi := 0, 0
	for _, o := range c.offs[:c.taps] {
		lo, hi = min(lo, o), max(hi, o)
	}
	_ = c.x[c.xi+lo]
	_ = c.x[c.xi+(c.k-1)*c.ldx+hi+n-1]
	_ = c.masks[(c.taps-1)*c.mstride+c.tiles*v-1]
	_ = c.w[c.taps*c.k*r-1]
	_ = c.y[c.yi+(r-1)*c.ldy+n-1]
	a := &c.args // in the call, which the Scratch holds: no allocation
	*a = kernelArgs{
		tiles: c.tiles, taps: c.taps, offs: &c.offs[0], masks: &c.masks[0], mstride: 2 * c.mstride,
		k: c.k, x: &c.x[c.xi], ldx: 4 * c.ldx, w: &c.w[0], y: &c.y[c.yi], ldy: 4 * c.ldy,
	}
	if c.acc {
		a.acc = 1
	}
	f((*byte)(unsafe.Pointer(a)))
	*a = kernelArgs{} // no pointers into the buffers kept past the call
}
