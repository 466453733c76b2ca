package par

import (
	"sync/atomic"
	"testing"
)

// countTask records which parts ran, and on which workers.
type countTask struct {
	runs    []atomic.Int32
	workers []atomic.Int32
}

func (c *countTask) Run(part, worker int) {
	c.runs[part].Add(1)
	c.workers[worker].Add(1)
}

func TestDoRunsEveryPartOnce(t *testing.T) {
	for _, tc := range []struct{ parts, threads int }{{0, 2}, {1, 1}, {1, 4}, {7, 1}, {7, 2}, {64, 3}, {3, 8}} {
		t.Run("", func(t *testing.T) {
			c := &countTask{runs: make([]atomic.Int32, tc.parts), workers: make([]atomic.Int32, max(tc.threads, 1))}
			for range 20 {
				Do(c, tc.parts, tc.threads)
			}
			for i := range c.runs {
				if n := c.runs[i].Load(); n != 20 {
					t.Errorf("parts %d threads %d: part %d ran %d times in 20 calls", tc.parts, tc.threads, i, n)
				}
			}
			for w := min(tc.threads, tc.parts); w < len(c.workers); w++ {
				if n := c.workers[w].Load(); n != 0 {
					t.Errorf("parts %d threads %d: worker %d ran %d parts", tc.parts, tc.threads, w, n)
				}
			}
		})
	}
}

func TestDoDoesNotAllocate(t *testing.T) {
	c := &countTask{runs: make([]atomic.Int32, 16), workers: make([]atomic.Int32, 2)}
	Do(c, 16, 2)
	if n := testing.AllocsPerRun(100, func() { Do(c, 16, 2) }); n != 0 {
		t.Errorf("Do allocates %v times per call", n)
	}
}
