//go:build !purego

package vec

// reluAVX2 applies ReLU to n (a multiple of 8) values; see ReLU.
//
//go:noescape
func reluAVX2(n int, y *float32)

// addReluAVX2 sets y = max(y + r, 0) for n (a multiple of 8) values; see AddReLU.
//
//go:noescape
func addReluAVX2(n int, y, r *float32)

// scaleShiftAVX2 sets y = y*a + b for n (a multiple of 8) values; see ScaleShift.
//
//go:noescape
func scaleShiftAVX2(n int, y *float32, a, b float32)
