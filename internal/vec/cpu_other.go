//go:build purego || !amd64

package vec

var useAVX2 = false

func adamAVX2(n int, w, grad, m, v, mask, c *float32)       { panic("vec: no assembly") }
func adamMaskedAVX2(n int, w, grad, m, v, mask, c *float32) { panic("vec: no assembly") }

func addReluAVX2(n int, y, r *float32) { panic("vec: no assembly") }
