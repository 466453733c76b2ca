package quant_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/quant"
)

func randomCodes(rng *rand.Rand, n, bits int) []int32 {
	q := make([]int32, n)
	lo := -(1 << (bits - 1))
	for i := range q {
		q[i] = int32(lo + rng.IntN(1<<bits))
	}
	return q
}

// Every width 2..8 and column counts that leave a row ending mid-word (odd ones,
// ones straddling words) round-trip, with each row starting on a new word.
func TestPackRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for bits := 2; bits <= 8; bits++ {
		for _, cols := range []int{1, 3, 7, 10, 11, 31, 33, 100, 784} {
			t.Run(fmt.Sprintf("bits=%d/cols=%d", bits, cols), func(t *testing.T) {
				rows := 3
				q := randomCodes(rng, rows*cols, bits)
				// The extremes must survive too.
				q[0], q[len(q)-1] = -(1 << (bits - 1)), 1<<(bits-1)-1
				packed := quant.Pack(q, rows, cols, bits)
				if want := rows * quant.PackedWidth(cols, bits); len(packed) != want {
					t.Fatalf("%d words, want %d", len(packed), want)
				}
				back, err := quant.Unpack(packed, rows, cols, bits)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(back, q) {
					t.Fatalf("round trip changed the codes:\n got %v\nwant %v", back[:min(12, len(back))], q[:min(12, len(q))])
				}
			})
		}
	}
}

// The spec's layout: value + 2^(b-1), element i of a row at bit i*b of the row's
// little-endian stream of int32 words, checked bit by bit against the definition.
func TestPackLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for bits := 2; bits <= 8; bits++ {
		cols := 37
		q := randomCodes(rng, cols, bits)
		packed := quant.Pack(q, 1, cols, bits)
		bit := func(k int) uint32 { return uint32(packed[k/32]) >> (k % 32) & 1 }
		for i, v := range q {
			var code uint32
			for j := 0; j < bits; j++ {
				code |= bit(i*bits+j) << j
			}
			if want := uint32(v + 1<<(bits-1)); code != want {
				t.Errorf("bits %d: element %d reads %d, want %d", bits, i, code, want)
			}
		}
		for k := cols * bits; k < len(packed)*32; k++ {
			if bit(k) != 0 {
				t.Errorf("bits %d: padding bit %d is set", bits, k)
			}
		}
	}
	// compressed-tensors' docstring example: [1, 2] at 8 bits packs to 33409.
	if got := quant.Pack([]int32{1, 2}, 1, 2, 8); !slices.Equal(got, []int32{33409}) {
		t.Errorf("Pack([1 2], 8 bits) = %v, want [33409]", got)
	}
	// Four 4-bit values -8, -1, 0, 7 -> codes 0, 7, 8, 15 -> 0xF870.
	if got := quant.Pack([]int32{-8, -1, 0, 7}, 1, 4, 4); !slices.Equal(got, []int32{0xF870}) {
		t.Errorf("Pack([-8 -1 0 7], 4 bits) = %#x, want 0xf870", got)
	}
}

func TestUnpackRejectsWrongLength(t *testing.T) {
	if _, err := quant.Unpack(make([]int32, 3), 2, 9, 4); err == nil {
		t.Fatal("Unpack accepted 3 words for 2 rows of 9 4-bit values (needs 4)")
	}
}
