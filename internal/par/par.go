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
// most a part.
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
	j.wg.Add(threads - 1)
	for range threads - 1 {
		work <- j
	}
	j.run(0)
	j.wg.Wait()
	j.t = nil
	jobs.Put(j)
}

type job struct {
	t     Task
	parts int
	next  atomic.Int32 // the next part to claim
	ids   atomic.Int32 // helper worker ids handed out
	wg    sync.WaitGroup
}

var jobs = sync.Pool{New: func() any { return new(job) }}

func (j *job) run(worker int) {
	for {
		i := int(j.next.Add(1)) - 1
		if i >= j.parts {
			return
		}
		j.t.Run(i, worker)
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
				j.run(int(j.ids.Add(1)))
				j.wg.Done()
			}
		}()
	}
}
