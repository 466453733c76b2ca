package sparse

import "unsafe"

// Geometry of the format: rows in slices of one vector's lanes, columns in
// chunks of two vectors, which VPERMI2PS can index.
const (
	lanes = 16 // rows per slice
	chunk = 32 // columns per chunk
)

// format is a sparse [out × in] matrix laid out for the kernels.
//
// For slice s (rows 16s..16s+15) and chunk c (columns 32c..32c+31),
// cnt[s*chunks+c] is the largest number of nonzeros any of the slice's
// rows has in the chunk: that many iterations follow in idx and the value
// array, each 16 entries, lane r holding row 16s+r's next nonzero in the
// chunk (its column minus 32c, and its value) or, once the row has none
// left, offset 0 and value 0. Iterations are stored slice by slice, chunk
// by chunk. Padding costs work, not correctness: at 8% density a chunk
// holds 2.6 nonzeros per row on average and its slice about 5.5
// iterations.
type format struct {
	out, in        int
	slices, chunks int
	nnz            int
	cnt            []uint8
	idx            []uint8
	f32            []float32 // values, when float32
	i8             []int8    // values, when int8
	scale          []float32 // int8: each row's scale, zero-padded to slices·16 rows
}

// build lays out the nonzeros that at(r, j) reports (value, nonzero) for
// the int8 or float32 value array.
func build(out, in int, int8v bool, at func(r, j int) (float32, int8, bool)) *format {
	f := &format{out: out, in: in, slices: (out + lanes - 1) / lanes, chunks: (in + chunk - 1) / chunk}
	f.cnt = make([]uint8, f.slices*f.chunks)
	type entry struct {
		off uint8
		f   float32
		q   int8
	}
	var rows [lanes][]entry
	for s := 0; s < f.slices; s++ {
		for c := 0; c < f.chunks; c++ {
			most := 0
			for r := 0; r < lanes; r++ {
				rows[r] = rows[r][:0]
				row := s*lanes + r
				if row >= out {
					continue
				}
				for j := c * chunk; j < min(in, (c+1)*chunk); j++ {
					if v, q, ok := at(row, j); ok {
						rows[r] = append(rows[r], entry{uint8(j - c*chunk), v, q})
					}
				}
				most = max(most, len(rows[r]))
				f.nnz += len(rows[r])
			}
			f.cnt[s*f.chunks+c] = uint8(most)
			for t := 0; t < most; t++ {
				for r := 0; r < lanes; r++ {
					var e entry
					if t < len(rows[r]) {
						e = rows[r][t]
					}
					f.idx = append(f.idx, e.off)
					if int8v {
						f.i8 = append(f.i8, e.q)
					} else {
						f.f32 = append(f.f32, e.f)
					}
				}
			}
		}
	}
	return f
}

// iterations is the number of 16-lane steps the kernels take per row of x.
func (f *format) iterations() int { return len(f.idx) / lanes }

// kernelArgs are one kernel call's arguments, in the order asm/gen.go
// reads them (8 bytes each).
type kernelArgs struct {
	slices, chunks int
	cnt, idx       *uint8
	val            unsafe.Pointer // *float32 or *int8
	scale          *float32
	x              *float32 // first row of x
	ldx            int      // floats between rows of x
	full           int      // chunks whose 32 columns are all inside x's rows
	xmask          uint64   // lanes of the last, partial chunk: bits 0-15 low half, 16-31 high
	bias           *float32 // nil: no bias
	y              *float32 // first row of y
	ldy            int
	ymask          uint64 // lanes of the last slice
}

// mulGo is the kernels' computation in Go, in their order: for nb rows of
// x, lane by lane, four sums per row (chunk parity × iteration parity),
// each product rounded before it is added (no fused multiply-add), then
// ((a00 + a01) + (a10 + a11)), times the row's scale for int8 values,
// plus the bias.
func (f *format) mulGo(nb int, x []float32, ldx int, bias, y []float32, ldy int) {
	for b := 0; b < nb; b++ {
		xr := x[b*ldx : b*ldx+f.in]
		yr := y[b*ldy : b*ldy+f.out]
		it := 0 // iteration index into idx and the values
		k := 0  // index into cnt
		for s := 0; s < f.slices; s++ {
			var a [2][2][lanes]float32
			for c := 0; c < f.chunks; c++ {
				n := int(f.cnt[k])
				k++
				if n == 0 {
					continue
				}
				// The chunk's x, zero past the row's end (the kernels' masked loads).
				var xs [chunk]float32
				copy(xs[:], xr[c*chunk:min(len(xr), (c+1)*chunk)])
				p := c & 1
				for t := 0; t < n; t++ {
					q := t & 1
					sums := &a[p][q]
					off := f.idx[it*lanes : it*lanes+lanes]
					if f.i8 != nil {
						vals := f.i8[it*lanes : it*lanes+lanes]
						for r := range sums {
							sums[r] += float32(float32(vals[r]) * xs[off[r]&(chunk-1)])
						}
					} else {
						vals := f.f32[it*lanes : it*lanes+lanes]
						for r := range sums {
							sums[r] += float32(vals[r] * xs[off[r]&(chunk-1)])
						}
					}
					it++
				}
			}
			for r := 0; r < lanes && s*lanes+r < f.out; r++ {
				row := s*lanes + r
				v := (a[0][0][r] + a[0][1][r]) + (a[1][0][r] + a[1][1][r])
				if f.scale != nil {
					v = float32(v * f.scale[row]) // rounded: no fusing with the bias add
				}
				if bias != nil {
					v += bias[row]
				}
				yr[row] = v
			}
		}
	}
}
