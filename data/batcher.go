package data

import (
	"fmt"
	"math/rand/v2"
)

// Batcher iterates over a Split in batches for training, copying rows into
// caller-owned buffers without allocating. Each Epoch starts a new pass, in a fresh
// seeded permutation when shuffling. Before the first Epoch, a Batcher walks the rows
// in order.
type Batcher struct {
	s       *Split
	bs      int
	shuffle bool
	perm    []int32
	pos     int
}

// NewBatcher returns a Batcher over s yielding batches of batchSize rows (the last
// one of an epoch may be shorter).
func NewBatcher(s *Split, batchSize int, shuffle bool) *Batcher {
	if batchSize < 1 {
		panic(fmt.Sprintf("data: NewBatcher: batch size %d, must be at least 1", batchSize))
	}
	b := &Batcher{s: s, bs: batchSize, shuffle: shuffle, perm: make([]int32, s.N)}
	b.identity()
	return b
}

func (b *Batcher) identity() {
	for i := range b.perm {
		b.perm[i] = int32(i)
	}
}

// Epoch starts a new pass over the rows. When shuffling, the order is a new
// Fisher-Yates permutation of the rows in file order, drawn from rng (so the order of
// an epoch depends only on rng's state, not on earlier epochs); rng may be nil when
// not shuffling.
func (b *Batcher) Epoch(rng *rand.Rand) {
	b.pos = 0
	if !b.shuffle {
		return
	}
	if rng == nil {
		panic("data: Batcher.Epoch: shuffling needs a non-nil rng")
	}
	b.identity()
	rng.Shuffle(len(b.perm), func(i, j int) { b.perm[i], b.perm[j] = b.perm[j], b.perm[i] })
}

// Next copies the next batch into x (at least BatchSize*Features values) and y (at
// least BatchSize labels) and returns the number of rows n. n < BatchSize only for
// the last batch of an epoch; ok is false, with n = 0, when the epoch is over.
func (b *Batcher) Next(x []float32, y []int32) (n int, ok bool) {
	f := b.s.Features
	if len(x) < b.bs*f || len(y) < b.bs {
		panic(fmt.Sprintf("data: Batcher.Next: buffers hold %d values and %d labels, need %d and %d", len(x), len(y), b.bs*f, b.bs))
	}
	n = min(b.bs, len(b.perm)-b.pos)
	if n <= 0 {
		return 0, false
	}
	X, Y := b.s.X, b.s.Y
	for k, i := range b.perm[b.pos : b.pos+n] {
		r := int(i) * f
		copy(x[k*f:(k+1)*f], X[r:r+f])
		y[k] = Y[i]
	}
	b.pos += n
	return n, true
}

// NumBatches returns the number of batches in an epoch.
func (b *Batcher) NumBatches() int { return ceilDiv(len(b.perm), b.bs) }

// BatchSize returns the batch size.
func (b *Batcher) BatchSize() int { return b.bs }

// Order returns the row order of the current epoch (read only).
func (b *Batcher) Order() []int32 { return b.perm }
