package sparse

import "unsafe"

// Geometry of the format: rows in slices of one vector's lanes, columns in
// chunks of two vectors, which VPERMI2PS can index.
const (
	lanes = 16 // rows per slice
	chunk = 32 // columns per chunk
	group = 4  // iterations per unrolled step; runs are padded to a multiple
)

// format is a sparse [out × in] matrix laid out for the kernels.
//
// Rows are taken 16 at a time (a slice), one per vector lane, and columns
// 32 at a time (a chunk). A slice is a list of iterations, each 16
// entries, lane r holding one nonzero of row 16s+r (its column's offset
// within the chunk, 0..31, and its value) or, where the row has no more
// nonzeros in the chunk, offset 0 and value 0. A chunk takes as many
// iterations as the slice's row with the most nonzeros in it; at 8%
// density that is about 5.5 for 2.6 nonzeros per row, so about half of
// the lanes do useless work, traded for a loop without data-dependent
// branches.
//
// A slice's iterations come in two runs, each padded with empty
// iterations to a multiple of 4 (the kernels' unrolling): first those of
// the whole chunks, chunk by chunk, in pairs (a chunk with an odd count
// gets an empty iteration) that share one load of the chunk, each pair
// with its chunk's byte offset in x (off); then those of the last chunk
// when in is not a multiple of 32, whose part of x the kernels load once
// per row, masked.
type format struct {
	out, in int
	slices  int
	nnz     int
	runs    []uint32  // per slice: iterations over whole chunks, then over the last partial chunk
	off     []uint32  // per pair of whole-chunk iterations: their chunk's byte offset in a row of x
	idx     []uint8   // per iteration: 16 column offsets within the chunk
	f32     []float32 // per iteration: 16 values, when float32
	i8      []int8    // per iteration: 16 values, when int8
	scale   []float32 // int8: each row's scale, zero-padded to slices·16 rows
}

// build lays out the nonzeros that at(r, j) reports (value, nonzero) for
// the int8 or float32 value array.
func build(out, in int, int8v bool, at func(r, j int) (float32, int8, bool)) *format {
	f := &format{out: out, in: in, slices: (out + lanes - 1) / lanes}
	f.runs = make([]uint32, 2*f.slices)
	whole, chunks := in/chunk, (in+chunk-1)/chunk
	type entry struct {
		off uint8
		f   float32
		q   int8
	}
	var rows [lanes][]entry
	// add appends one iteration: the t-th entry of each lane (none for t < 0).
	add := func(t int) {
		for r := 0; r < lanes; r++ {
			var e entry
			if t >= 0 && t < len(rows[r]) {
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
	// gather fills rows with slice s's nonzeros in chunk c and returns the
	// most any row has.
	gather := func(s, c int) int {
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
		return most
	}
	for s := 0; s < f.slices; s++ {
		run := &f.runs[2*s]
		for c := 0; c < whole; c++ {
			most := gather(s, c)
			most += most & 1 // whole pairs, which share the chunk's loads
			for t := 0; t < most; t++ {
				add(t)
			}
			for t := 0; t < most; t += 2 {
				f.off = append(f.off, uint32(c*chunk*4))
			}
			*run += uint32(most)
		}
		for ; *run%group != 0; *run += 2 {
			add(-1)
			add(-1)
			f.off = append(f.off, 0)
		}
		run = &f.runs[2*s+1]
		if whole < chunks {
			most := gather(s, whole)
			for t := 0; t < most; t++ {
				add(t)
			}
			*run += uint32(most)
		}
		for ; *run%group != 0; *run++ {
			add(-1)
		}
	}
	return f
}

// iterations is the number of 16-lane steps the kernels take per row of x.
func (f *format) iterations() int { return len(f.idx) / lanes }

// kernelArgs are one kernel call's arguments, in the order asm/gen.go
// reads them (8 bytes each).
type kernelArgs struct {
	slices int
	runs   *uint32
	off    *uint32
	idx    *uint8
	val    unsafe.Pointer // *float32 or *int8
	scale  *float32
	x      *float32 // first row of x
	ldx    int      // floats between rows of x
	last   int      // byte offset of the last, partial chunk in a row of x
	xmask  uint64   // its lanes: bits 0-15 the low 16 floats, 16-31 the high
	bias   *float32 // nil: no bias
	y      *float32 // first row of y
	ldy    int
	ymask  uint64 // lanes of the last slice
}

// mulGo is the kernels' computation in Go, in their order. For each row
// of x and each lane, four sums a[0..3]: a slice's i-th iteration (whole
// chunks first, then the last chunk) adds to a[i mod 4] its product,
// rounded before the addition (no fused multiply-add); the lane's result
// is (a0 + a1) + (a2 + a3), times the row's scale for int8 values, plus
// the bias.
func (f *format) mulGo(nb int, x []float32, ldx int, bias, y []float32, ldy int) {
	whole := f.in / chunk
	for b := 0; b < nb; b++ {
		xr := x[b*ldx : b*ldx+f.in]
		yr := y[b*ldy : b*ldy+f.out]
		// The last chunk, zero past the row's end (the kernels' masked loads).
		var last [chunk]float32
		copy(last[:], xr[whole*chunk:])
		it, ia := 0, 0 // iteration, and whole-chunk iteration (two per offset)
		for s := 0; s < f.slices; s++ {
			var a [group][lanes]float32
			i := 0
			for k := 0; k < 2; k++ {
				for n := int(f.runs[2*s+k]); n > 0; n-- {
					xs := last[:]
					if k == 0 {
						o := int(f.off[ia/2]) / 4
						xs = xr[o : o+chunk]
						ia++
					}
					sums := &a[i%group]
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
					i++
				}
			}
			for r := 0; r < lanes && s*lanes+r < f.out; r++ {
				row := s*lanes + r
				v := (a[0][r] + a[1][r]) + (a[2][r] + a[3][r])
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
