//go:build !purego

package vec

import (
	"os"

	"golang.org/x/sys/cpu"
)

// useAVX2 picks the assembly; SHRINK_GEMM=purego (shrink's switch for every
// kernel) turns it off.
var useAVX2 = cpu.X86.HasAVX2 && os.Getenv("SHRINK_GEMM") != "purego"
