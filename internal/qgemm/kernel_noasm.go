//go:build !amd64 || purego

package qgemm

// asmImpls: no assembly in this build.
func asmImpls() []*impl { return nil }

// widen sets dst[i] = int16(src[i]) (only the AVX2 tiles read int16 A).
func widen(dst []int16, src []uint8) {
	for i, v := range src {
		dst[i] = int16(v)
	}
}
