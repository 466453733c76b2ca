//go:build amd64 && !purego

package planar

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// kernels lists the asm kernels by vector count, then by r-1 (an array:
// a map lookup per call showed in profiles).
var kernels = [5][]func(*byte){
	4: {planarR1V4, planarR2V4, planarR3V4, planarR4V4, planarR5V4, planarR6V4, planarR7V4},
	1: {planarR1V1, planarR2V1, planarR3V1, planarR4V1, planarR5V1, planarR6V1, planarR7V1},
}

// asmV is the main tiles' vector count (asm/gen.go).
const asmV = 4

var avx512Impl = impl{name: "avx512", v: asmV, rmax: len(kernels[asmV]), run: runAsm}

// asmImpl is the AVX-512 implementation if this CPU has AVX-512F.
func asmImpl() *impl {
	if cpu.X86.HasAVX512F {
		return &avx512Impl
	}
	return nil
}

func runAsm(r, v int, c *call) { runKernel(kernels[v][r-1], v, r, c) }

// runKernel checks the call's slices, then runs f. The lanes that the
// masks leave out are neither read nor written (AVX-512 masked loads and
// stores do not fault there either), so only the lanes they let through
// must be in the slices: the stores' ones are positions below c.n, and
// the loads' ones read the images (the masks say so; Forward checks the
// images' bounds).
func runKernel(f func(*byte), v, r int, c *call) {
	if c.xi < 0 || c.n > c.tiles*v*16 {
		panic("planar: kernel call outside its slices")
	}
	_ = c.x[c.xi+(c.k-1)*c.ldx+c.n-1]
	for _, m := range c.moffs[:c.taps] {
		_ = c.masks[m+c.tiles*v-1]
	}
	_ = c.smasks[c.tiles*v-1]
	_ = c.w[c.taps*c.k*r-1]
	_ = c.y[c.yi+(r-1)*c.ldy+c.n-1]
	a := &c.args // in the call, which the Scratch holds: no allocation
	*a = kernelArgs{
		tiles: c.tiles, taps: c.taps, offs: &c.offs[0], masks: &c.masks[0], moffs: &c.moffs[0],
		k: c.k, x: &c.x[c.xi], ldx: 4 * c.ldx, w: &c.w[0], y: &c.y[c.yi], ldy: 4 * c.ldy,
		smasks: &c.smasks[0],
	}
	if c.acc {
		a.acc = 1
	}
	f((*byte)(unsafe.Pointer(a)))
	*a = kernelArgs{} // no pointers into the buffers kept past the call
}
