package data

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// seqSplit returns n rows of f features where row i holds i, i+0.5, ... and label i.
func seqSplit(n, f int) *Split {
	s := &Split{X: make([]float32, n*f), Y: make([]int32, n), N: n, Features: f}
	for i := range n {
		for k := range f {
			s.X[i*f+k] = float32(i) + float32(k)/float32(f)
		}
		s.Y[i] = int32(i)
	}
	return s
}

// epochRows runs one epoch and returns the row indices seen, batch sizes, and checks
// that each copied row matches its label.
func epochRows(t *testing.T, b *Batcher, s *Split, rng *rand.Rand) (rows []int, sizes []int) {
	t.Helper()
	b.Epoch(rng)
	x := make([]float32, b.BatchSize()*s.Features)
	y := make([]int32, b.BatchSize())
	for {
		n, ok := b.Next(x, y)
		if !ok {
			if n != 0 {
				t.Fatalf("ok false with n = %d", n)
			}
			break
		}
		for k := range n {
			if !slices.Equal(x[k*s.Features:(k+1)*s.Features], s.Row(int(y[k]))) {
				t.Fatalf("batch row %d does not match label %d", k, y[k])
			}
			rows = append(rows, int(y[k]))
		}
		sizes = append(sizes, n)
	}
	if n, ok := b.Next(x, y); ok || n != 0 {
		t.Fatal("Next after the end returned a batch")
	}
	return rows, sizes
}

func TestBatcherCoversEachRowOnce(t *testing.T) {
	tests := []struct {
		n, bs      int
		wantSizes  []int
		numBatches int
	}{
		{10, 3, []int{3, 3, 3, 1}, 4},
		{10, 5, []int{5, 5}, 2},
		{10, 10, []int{10}, 1},
		{10, 64, []int{10}, 1},
		{1, 1, []int{1}, 1},
		{0, 4, nil, 0},
	}
	for _, tt := range tests {
		for _, shuffle := range []bool{false, true} {
			s := seqSplit(tt.n, 3)
			b := NewBatcher(s, tt.bs, shuffle)
			if b.NumBatches() != tt.numBatches {
				t.Fatalf("n %d bs %d: NumBatches %d; want %d", tt.n, tt.bs, b.NumBatches(), tt.numBatches)
			}
			rng := rand.New(rand.NewPCG(1, 1))
			for epoch := range 3 {
				rows, sizes := epochRows(t, b, s, rng)
				if !slices.Equal(sizes, tt.wantSizes) {
					t.Fatalf("n %d bs %d shuffle %v epoch %d: sizes %v; want %v", tt.n, tt.bs, shuffle, epoch, sizes, tt.wantSizes)
				}
				sorted := slices.Sorted(slices.Values(rows))
				for i, r := range sorted {
					if r != i {
						t.Fatalf("n %d bs %d shuffle %v: rows seen %v", tt.n, tt.bs, shuffle, rows)
					}
				}
				if !shuffle && !slices.IsSorted(rows) {
					t.Fatalf("no shuffle, rows out of order: %v", rows)
				}
			}
		}
	}
}

// A batch size near the largest int (batch_size has no upper bound) is one
// batch of everything, not a count that overflowed.
func TestNumBatchesOfHugeBatch(t *testing.T) {
	s := seqSplit(10, 3)
	for _, bs := range []int{math.MaxInt, math.MaxInt - 5, 1 << 62} {
		if got := NewBatcher(s, bs, false).NumBatches(); got != 1 {
			t.Errorf("Batcher.NumBatches with batch %d: %d, want 1", bs, got)
		}
		if got := s.NumBatches(bs); got != 1 {
			t.Errorf("Split.NumBatches(%d): %d, want 1", bs, got)
		}
	}
}

func TestBatcherShuffle(t *testing.T) {
	s := seqSplit(100, 2)
	order := func(seed uint64, epochs int) [][]int {
		b := NewBatcher(s, 7, true)
		rng := rand.New(rand.NewPCG(seed, 0))
		var all [][]int
		for range epochs {
			rows, _ := epochRows(t, b, s, rng)
			all = append(all, rows)
		}
		return all
	}
	a, b, c := order(5, 3), order(5, 3), order(6, 3)
	for e := range a {
		if !slices.Equal(a[e], b[e]) {
			t.Fatalf("epoch %d: same seed, different order", e)
		}
		if slices.Equal(a[e], c[e]) {
			t.Fatalf("epoch %d: different seeds, same order", e)
		}
		if slices.IsSorted(a[e]) {
			t.Fatalf("epoch %d: not shuffled", e)
		}
	}
	if slices.Equal(a[0], a[1]) || slices.Equal(a[1], a[2]) {
		t.Fatal("consecutive epochs in the same order")
	}
	// An epoch's order depends only on the rng state: replaying from a copy of the
	// state reproduces it (what resuming from a checkpoint needs).
	pcg := rand.NewPCG(9, 9)
	b1 := NewBatcher(s, 7, true)
	epochRows(t, b1, s, rand.New(pcg))
	state, _ := pcg.MarshalBinary()
	want, _ := epochRows(t, b1, s, rand.New(pcg))
	replay := rand.NewPCG(0, 0)
	replay.UnmarshalBinary(state)
	got, _ := epochRows(t, NewBatcher(s, 7, true), s, rand.New(replay))
	if !slices.Equal(got, want) {
		t.Fatal("replaying the rng state gave another order")
	}
}

func TestBatcherBeforeEpoch(t *testing.T) {
	s := seqSplit(5, 1)
	b := NewBatcher(s, 2, true)
	x, y := make([]float32, 2), make([]int32, 2)
	n, ok := b.Next(x, y)
	if !ok || n != 2 || y[0] != 0 || y[1] != 1 {
		t.Fatalf("first batch before Epoch: n %d ok %v y %v", n, ok, y)
	}
}

func TestBatcherPanics(t *testing.T) {
	s := seqSplit(5, 4)
	for name, f := range map[string]func(){
		"batch size 0":          func() { NewBatcher(s, 0, false) },
		"short x":               func() { NewBatcher(s, 2, false).Next(make([]float32, 7), make([]int32, 2)) },
		"short y":               func() { NewBatcher(s, 2, false).Next(make([]float32, 8), make([]int32, 1)) },
		"shuffle without a rng": func() { NewBatcher(s, 2, true).Epoch(nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	NewBatcher(s, 2, false).Epoch(nil) // fine without shuffling
}

func TestBatcherNextAllocs(t *testing.T) {
	s := seqSplit(1000, 16)
	b := NewBatcher(s, 32, true)
	rng := rand.New(rand.NewPCG(1, 2))
	x, y := make([]float32, 32*16), make([]int32, 32)
	allocs := testing.AllocsPerRun(200, func() {
		if _, ok := b.Next(x, y); !ok {
			b.Epoch(rng)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Next/Epoch; want 0", allocs)
	}
}

func BenchmarkBatcherNext(b *testing.B) {
	const n, f, bs = 60000, 784, 128
	s := seqSplit(n, f)
	bt := NewBatcher(s, bs, true)
	rng := rand.New(rand.NewPCG(1, 2))
	bt.Epoch(rng)
	x, y := make([]float32, bs*f), make([]int32, bs)
	b.SetBytes(bs * f * 4)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := bt.Next(x, y); !ok {
			bt.Epoch(rng)
		}
	}
}
