//go:build !purego

package vec

import "golang.org/x/sys/cpu"

// useBN512 picks the AVX-512 batch norm kernels (they need AVX512BW, DQ
// and BMI2 too); without them the Go references give the same bits.
var useBN512 = useAVX512 && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasBMI2

// useReLU512 picks the AVX-512 element-wise kernels (ReLU, Add) (AVX512DQ for the logic ops on
// floats, BMI2 for the tail mask).
var useReLU512 = useBN512
