// Package par runs the parts of a task on several goroutines without
// allocating: the layers' kernels use it to spread a batch over the cores
// that SHRINK_THREADS grants (gemm.Threads).
//
// Which goroutine runs a part must never change a result: a task computes
// each part the same way whoever runs it, and combines parts in a fixed
// order, so results do not depend on the thread count.
package par

import (
	"sync"
	"sync/atomic"
)

// Task is work cut into parts. Run computes one part; worker (below the
// thread count given to Do) names the goroutine, so a task can keep scratch
// per worker: no two parts run on one worker at once.
type Task interface {
	Run(part, worker int)
}

// Do runs parts 0..parts-1 of t on up to threads goroutines, the caller's
// included, and returns when all are done. Parts are claimed in order from
// a shared counter, so a helper that starts late (its core busy) costs at
// most a part. Do may be called from inside a part (or from several
// goroutines at once): a caller waiting for its helpers runs queued jobs.
func Do(t Task, parts, threads int) {
	threads = min(threads, parts)
	if threads <= 1 {
		for i := 0; i < parts; i++ {
			t.Run(i, 0)
		}
		return
	}
	ensureWorkers(threads - 1)
	j := jobs.Get().(*job)
	j.t, j.parts = t, parts
	j.next.Store(0)
	j.ids.Store(0)
	j.helpers.Store(int32(threads - 1))
	for range threads - 1 {
		work <- j
	}
	j.run(0)
	// Wait for the helpers, running the jobs queued meanwhile: a part that
	// itself calls Do (nested) waits here too, and if every helper goroutine
	// were such a waiter, blocking would leave the queued helpers' sends
	// with no one to take them.
	for waiting := true; waiting; {
		select {
		case <-j.done:
			waiting = false
		case other := <-work:
			other.help()
		}
	}
	j.t = nil
	jobs.Put(j)
}

type job struct {
	t       Task
	parts   int
	next    atomic.Int32  // the next part to claim
	ids     atomic.Int32  // helper worker ids handed out
	helpers atomic.Int32  // helpers that have not finished
	done    chan struct{} // receives once the last helper finished
}

var jobs = sync.Pool{New: func() any { return &job{done: make(chan struct{}, 1)} }}

func (j *job) run(worker int) {
	for {
		i := int(j.next.Add(1)) - 1
		if i >= j.parts {
			return
		}
		j.t.Run(i, worker)
	}
}

// help is one helper's share of j: each send of j on the channel is taken
// once, so the ids 1..threads-1 are distinct.
func (j *job) help() {
	j.run(int(j.ids.Add(1)))
	if j.helpers.Add(-1) == 0 {
		j.done <- struct{}{}
	}
}

// The helpers live for the whole process and block on the channel when idle.
var (
	work      = make(chan *job, 64)
	workersMu sync.Mutex
	nWorkers  int
)

func ensureWorkers(n int) {
	workersMu.Lock()
	defer workersMu.Unlock()
	for ; nWorkers < n; nWorkers++ {
		go func() {
			for j := range work {
				j.help()
			}
		}()
	}
}
