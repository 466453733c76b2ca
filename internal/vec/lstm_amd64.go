//go:build !purego

package vec

import (
	"os"

	"golang.org/x/sys/cpu"
)

// useAVX512 picks the 16-lane LSTM cell; SHRINK_GEMM=avx2 (or purego) keeps
// to the narrower kernels, as it does for package gemm.
var useAVX512 = useAVX2 && cpu.X86.HasAVX512F && os.Getenv("SHRINK_GEMM") != "avx2"
