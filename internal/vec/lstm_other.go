//go:build purego || !amd64

package vec

func lstmCellAVX2(n, hs int, z, cprev, c, tc, h, consts *float32) { panic("vec: no assembly") }
