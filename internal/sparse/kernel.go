package sparse

import (
	"sync/atomic"

	"github.com/shrink-ml/shrink/internal/gemm"
)

// impl is a way to run the format; every one gives the same bits.
type impl struct {
	name string
	mul  func(f *format, batch int, x []float32, ldx int, bias, y []float32, ldy int)
}

var goImpl = impl{name: "purego", mul: func(f *format, batch int, x []float32, ldx int, bias, y []float32, ldy int) {
	f.mulGo(batch, x, ldx, bias, y, ldy)
}}

// active is the implementation in use, chosen at start-up; only tests and
// benchmarks change it.
var active atomic.Pointer[impl]

// envVar overrides the choice: "purego" or "avx512" (if the CPU has it).
// SHRINK_GEMM=purego, shrink's switch for all of its assembly, also
// selects Go.
const envVar = "SHRINK_SPARSE"

func init() {
	active.Store(chooseImpl(gemm.Requested(envVar)))
}

func chooseImpl(want string) *impl {
	if want == "purego" {
		return &goImpl
	}
	if im := asmImpl(); im != nil {
		return im
	}
	return &goImpl
}

// Impl reports the kernels in use: "avx512" or "purego".
func Impl() string { return active.Load().name }

func useImpl(name string) (prev string) {
	prev = active.Load().name
	active.Store(chooseImpl(name))
	return prev
}
