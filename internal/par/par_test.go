package par

import (
	"sync/atomic"
	"testing"
	"time"
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

// nestedTask's parts each run a task of their own on the same pool, as a
// layer's kernel might inside another's part.
type nestedTask struct {
	inner []countTask
}

func (n *nestedTask) Run(part, worker int) {
	Do(&n.inner[part], len(n.inner[part].runs), 2)
}

// TestNestedDoFinishes: with every pool goroutine inside a part that waits
// on a nested Do, the nested jobs' helper sends must still be taken (by the
// waiters themselves), and every inner part must run once.
func TestNestedDoFinishes(t *testing.T) {
	n := &nestedTask{inner: make([]countTask, 8)}
	for i := range n.inner {
		n.inner[i] = countTask{runs: make([]atomic.Int32, 5), workers: make([]atomic.Int32, 2)}
	}
	done := make(chan struct{})
	go func() {
		for range 200 {
			Do(n, len(n.inner), 3)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("nested Do calls deadlocked")
	}
	for i := range n.inner {
		for p := range n.inner[i].runs {
			if got := n.inner[i].runs[p].Load(); got != 200 {
				t.Errorf("inner task %d part %d ran %d times in 200 calls", i, p, got)
			}
		}
	}
}
