package gemm

import "testing"

// BenchmarkPack measures the packing of fc1's operands (784×300 weights,
// 128×784 activations) in each layout, for the Go and asm packers.
func BenchmarkPack(b *testing.B) {
	a := make([]float32, 1000*784)
	dst := make([]float32, 128*800+4096)
	dstB := make([]float32, 784*320)
	for _, im := range append([]*impl{&goImpl}, asmImpls()...) {
		b.Run("AT_128x784/"+im.name, func(b *testing.B) {
			for range b.N {
				for pc := 0; pc < 784; pc += 392 {
					packAT(im, dst, a, 128, 0, 120, 120, pc, 392, 400)
					packAT(im, dst, a, 128, 120, 8, 12, pc, 392, 400)
				}
			}
		})
		b.Run("BN_784x300_nr32/"+im.name, func(b *testing.B) {
			for range b.N {
				packB(im, dstB, a, 300, false, 0, 784, 0, 300, 32)
			}
		})
		b.Run("BT_784x300_nr32/"+im.name, func(b *testing.B) {
			for range b.N {
				packB(im, dstB, a, 784, true, 0, 784, 0, 300, 32)
			}
		})
	}
}
