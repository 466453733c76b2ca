//go:build !purego

package vec

// addReluAVX2 sets y = max(y + r, 0) for n (a multiple of 8) values; see AddReLU.
//
//go:noescape
func addReluAVX2(n int, y, r *float32)
