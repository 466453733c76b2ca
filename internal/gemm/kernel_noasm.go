//go:build !amd64 || purego

package gemm

// asmImpls: no asm kernels in this build.
func asmImpls() []*impl { return nil }
