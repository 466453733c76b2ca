package gemm

import "unsafe"

// goImpl is the portable implementation, used without AVX2/FMA, on other
// architectures, under the purego build tag, or with SHRINK_GEMM=purego.
// It shares the blocked driver and packing with the asm kernels; only the
// micro-kernel is scalar Go.
var goImpl = impl{
	name: "purego",
	kc:   goKC,
	// 4×4 measured faster than 2×4 and 2×8 (Go keeps some of the 16
	// scalar accumulators on the stack, but loads 8 values per 16 multiply-adds).
	wide:     &tileKernel{name: "go4x4", mr: 4, nr: 4, fn: gemmGo4x4, fullMask: 1<<4 - 1, mc: 128, nc: 1024},
	gemvT:    gemvTGo,
	copyRuns: copyRunsGo,
	gemvN:    gemvNGo,
}

// gemmGo4x4 is the kernelFunc contract in scalar Go (full tiles only).
func gemmGo4x4(k int, a *float32, rsa int, b, c *float32, ldc int, alpha, beta float32, _ int, _ uint64) {
	as := unsafe.Slice(a, 3*rsa+k)
	a0, a1, a2, a3 := as[:k], as[rsa:rsa+k], as[2*rsa:2*rsa+k], as[3*rsa:3*rsa+k]
	bs := unsafe.Slice(b, 4*k)
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	for p := range a0 {
		bp := bs[4*p : 4*p+4 : 4*p+4]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		x := a0[p]
		c00 += x * b0
		c01 += x * b1
		c02 += x * b2
		c03 += x * b3
		x = a1[p]
		c10 += x * b0
		c11 += x * b1
		c12 += x * b2
		c13 += x * b3
		x = a2[p]
		c20 += x * b0
		c21 += x * b1
		c22 += x * b2
		c23 += x * b3
		x = a3[p]
		c30 += x * b0
		c31 += x * b1
		c32 += x * b2
		c33 += x * b3
	}
	cs := unsafe.Slice(c, 3*ldc+4)
	storeRow4(cs[0:4:4], c00, c01, c02, c03, alpha, beta)
	storeRow4(cs[ldc:ldc+4:ldc+4], c10, c11, c12, c13, alpha, beta)
	storeRow4(cs[2*ldc:2*ldc+4:2*ldc+4], c20, c21, c22, c23, alpha, beta)
	storeRow4(cs[3*ldc:3*ldc+4:3*ldc+4], c30, c31, c32, c33, alpha, beta)
}

func storeRow4(c []float32, x0, x1, x2, x3, alpha, beta float32) {
	c = c[:4]
	if beta == 0 {
		c[0], c[1], c[2], c[3] = alpha*x0, alpha*x1, alpha*x2, alpha*x3
		return
	}
	c[0] = alpha*x0 + beta*c[0]
	c[1] = alpha*x1 + beta*c[1]
	c[2] = alpha*x2 + beta*c[2]
	c[3] = alpha*x3 + beta*c[3]
}

// The Go matrix-vector products sum each output over p in order, in the
// driver's k blocks (kBlock of goKC) combined as it combines a tile's (the
// first with beta, later ones added), so a product of one row gives the
// bits of that row inside a product of many: a sample's result does not
// depend on how many share its batch.
const goKC = 256

// gemvTGo: y[j] = alpha*Σ_p x[p]*b[p*ldb+j] + beta*y[j], j < n, y
// accumulated one row of B at a time, in blocks of columns held in a stack
// array.
func gemvTGo(k, n int, alpha float32, x []float32, b []float32, ldb int, beta float32, y []float32) {
	const blk = 256
	var acc [blk]float32
	kc := kBlock(k, goKC)
	for j0 := 0; j0 < n; j0 += blk {
		w := min(blk, n-j0)
		t := acc[:w]
		for p0 := 0; p0 < k; p0 += kc {
			clear(t)
			for p := p0; p < min(k, p0+kc); p++ {
				xp := x[p]
				row := b[p*ldb+j0 : p*ldb+j0+w]
				for j, v := range row {
					t[j] += xp * v
				}
			}
			finishY(y[j0:j0+w], t, alpha, blockBeta(p0, beta))
		}
	}
}

// blockBeta is the beta of the k block starting at p0.
func blockBeta(p0 int, beta float32) float32 {
	if p0 > 0 {
		return 1
	}
	return beta
}

// gemvNGo: y[i] = alpha*dot(a[i*lda:i*lda+k], x) + beta*y[i], i < m, four
// rows at a time for independent chains.
func gemvNGo(m, k int, alpha float32, a []float32, lda int, x []float32, beta float32, y []float32) {
	x = x[:k]
	kc := kBlock(k, goKC)
	i := 0
	for ; i+4 <= m; i += 4 {
		r0, r1, r2, r3 := a[i*lda:i*lda+k], a[(i+1)*lda:(i+1)*lda+k], a[(i+2)*lda:(i+2)*lda+k], a[(i+3)*lda:(i+3)*lda+k]
		for p0 := 0; p0 < k; p0 += kc {
			var s0, s1, s2, s3 float32
			for p := p0; p < min(k, p0+kc); p++ {
				xp := x[p]
				s0 += xp * r0[p]
				s1 += xp * r1[p]
				s2 += xp * r2[p]
				s3 += xp * r3[p]
			}
			storeRow4(y[i:i+4], s0, s1, s2, s3, alpha, blockBeta(p0, beta))
		}
	}
	for ; i < m; i++ {
		row := a[i*lda : i*lda+k]
		for p0 := 0; p0 < k; p0 += kc {
			var s float32
			for p := p0; p < min(k, p0+kc); p++ {
				s += x[p] * row[p]
			}
			if bb := blockBeta(p0, beta); bb == 0 {
				y[i] = alpha * s
			} else {
				y[i] = alpha*s + bb*y[i]
			}
		}
	}
}

// finishY sets y = alpha*t + beta*y (y not read when beta == 0).
func finishY(y, t []float32, alpha, beta float32) {
	t = t[:len(y)]
	if beta == 0 {
		for j := range y {
			y[j] = alpha * t[j]
		}
		return
	}
	for j := range y {
		y[j] = alpha*t[j] + beta*y[j]
	}
}
