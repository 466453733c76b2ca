//go:build amd64 && !purego

package sparse

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

var avx512Impl = impl{name: "avx512", mul: mulAsm}

// asmImpl is the AVX-512 implementation if this CPU has AVX-512F.
func asmImpl() *impl {
	if cpu.X86.HasAVX512F {
		return &avx512Impl
	}
	return nil
}

// mulAsm runs the kernels on groups of four rows of x, which share each
// iteration's offsets and values, then on the rest one at a time.
func mulAsm(f *format, batch int, x []float32, ldx int, bias, y []float32, ldy int) {
	if len(f.idx) == 0 {
		// No iterations: every output is its bias.
		f.mulGo(batch, x, ldx, bias, y, ldy)
		return
	}
	a := f.args()
	a.ldx, a.ldy = ldx, ldy
	if bias != nil {
		a.bias = &bias[0]
	}
	// Direct calls (not through a func value), so that go:noescape keeps
	// a on the stack.
	p := (*byte)(unsafe.Pointer(&a))
	b := 0
	for ; b+4 <= batch; b += 4 {
		a.x, a.y = &x[b*ldx], &y[b*ldy]
		if f.i8 != nil {
			spmmI8x4(p)
		} else {
			spmmF32x4(p)
		}
	}
	for ; b < batch; b++ {
		a.x, a.y = &x[b*ldx], &y[b*ldy]
		if f.i8 != nil {
			spmmI8x1(p)
		} else {
			spmmF32x1(p)
		}
	}
}
