//go:build purego || !amd64

package vec

const useBN512 = false

func bnSum512(x *float32, runs, n, stride int) float64                 { panic("vec: no assembly") }
func bnSqDev512(x *float32, runs, n, stride int, mean float64) float64 { panic("vec: no assembly") }
func bnDotDev512(dy, x *float32, runs, n, stride int, mean float64) (sum, dot float64) {
	panic("vec: no assembly")
}
func scaleShift512(y, x *float32, runs, n, stride int, a, b float32) { panic("vec: no assembly") }
func bnGradIn512(dx, dy, x *float32, runs, n, stride int, gm, mf, k, sf float32) {
	panic("vec: no assembly")
}

const useReLU512 = false

func reluAVX512(n int, y, x *float32)               { panic("vec: no assembly") }
func reluGradAVX512(n int, dx, y, dy *float32)      { panic("vec: no assembly") }
func addAVX512(n int, y, a, b *float32)             { panic("vec: no assembly") }
func sumReLUAVX512(n int, y, a, b *float32)         { panic("vec: no assembly") }
func sumReLUGradAVX512(n int, dx, y, a, b *float32) { panic("vec: no assembly") }

func bnDotDevReLU512(dy, y, x *float32, runs, n, stride int, mean float64) (sum, dot float64) {
	panic("vec: no assembly")
}
func scaleShiftReLU512(y, x *float32, runs, n, stride int, a, b float32) { panic("vec: no assembly") }
func bnGradInReLU512(dx, dy, y, x *float32, runs, n, stride int, gm, mf, k, sf float32) {
	panic("vec: no assembly")
}

func gather2AVX512(dst *float32, ldd int, src *float32, lds int, rows, cols int) {
	panic("vec: no assembly")
}

func addTo2AVX512(dst *float32, ldd int, src *float32, lds int, rows, cols int) {
	panic("vec: no assembly")
}
