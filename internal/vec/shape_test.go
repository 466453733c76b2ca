package vec

import "testing"

// TestKernelsRejectNegativeStrides: the assembly takes raw pointers, so a
// walk its Go wrapper lets through reaches memory outside the slices. A
// negative stride (or leading dimension) steps before the slice's
// first element; the wrappers must panic as the Go references do. The
// slices are cut from a larger array, so a kernel that does step outside
// them only touches this test's own memory.
func TestKernelsRejectNegativeStrides(t *testing.T) {
	tests := []struct {
		name string
		call func(x, y []float32)
	}{
		{"BNSum", func(x, _ []float32) { BNSum(x, 3, 4, -1) }},
		{"BNSqDev", func(x, _ []float32) { BNSqDev(x, 3, 4, -1, 0) }},
		{"BNDotDev", func(x, y []float32) { BNDotDev(y, x, 3, 4, -1, 0) }},
		{"ScaleShift", func(x, y []float32) { ScaleShift(y, x, 3, 4, -1, 2, 1) }},
		{"ScaleShiftReLU", func(x, y []float32) { ScaleShiftReLU(y, x, 3, 4, -1, 2, 1) }},
		{"BNGradIn", func(x, y []float32) { BNGradIn(y, x, x, 3, 4, -1, 1, 1, 1, 1) }},
		{"BNDotDevReLU", func(x, y []float32) { BNDotDevReLU(y, x, x, 3, 4, -1, 0) }},
		{"BNGradInReLU", func(x, y []float32) { BNGradInReLU(y, x, x, x, 3, 4, -1, 1, 1, 1, 1) }},
		{"Gather2/ldd", func(x, y []float32) { Gather2(y, -4, x, 8, 3, 4) }},
		{"Gather2/lds", func(x, y []float32) { Gather2(y, 4, x, -8, 3, 4) }},
		{"AddTo2/ldd", func(x, y []float32) { AddTo2(y, -8, x, 4, 3, 4) }},
		{"AddTo2/lds", func(x, y []float32) { AddTo2(y, 8, x, -4, 3, 4) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Helper()
			xa, ya := make([]float32, 64), make([]float32, 64)
			for i := range xa {
				xa[i] = 1
			}
			x, y := xa[32:], ya[32:]
			defer func() {
				if recover() == nil {
					t.Errorf("%s with a negative stride returned; want a panic", tc.name)
				}
				for i, v := range ya[:32] {
					if v != 0 {
						t.Fatalf("%s wrote %v at %d values before its output slice", tc.name, v, 32-i)
					}
				}
			}()
			tc.call(x, y)
		})
	}
}
