//go:build purego || !amd64

package vec

var useAVX512 = false

func lstmCellAVX2(n, hs int, z, cprev, c, tc, h, consts *float32)   { panic("vec: no assembly") }
func lstmCellAVX512(n, hs int, z, cprev, c, tc, h, consts *float32) { panic("vec: no assembly") }

func minMaxAVX2(n int, x *float32, out *[2]float32) { panic("vec: no assembly") }

func lstmCellGradAVX2(n, hs int, gates, cprev, tc, dy, dh, dc, dz, consts *float32) {
	panic("vec: no assembly")
}

func lstmCellGradAVX512(n, hs int, gates, cprev, tc, dy, dh, dc, dz, consts *float32) {
	panic("vec: no assembly")
}
