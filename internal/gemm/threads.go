package gemm

import (
	"sync"
	"sync/atomic"
)

// threads is the number of goroutines a large product may use.
var threads atomic.Int32

func init() { threads.Store(1) }

// SetThreads sets how many goroutines (the caller's included) Sgemm may use
// for one large product; n < 1 means 1. The default is 1. Results do not
// depend on it: C is split into blocks of whole tiles and each element is
// still computed by one goroutine in the same order.
func SetThreads(n int) {
	n = max(n, 1)
	if backendThreads != nil {
		backendThreads(n)
	}
	ensureWorkers(n - 1)
	threads.Store(int32(n))
}

// Threads returns the value set by SetThreads.
func Threads() int { return int(threads.Load()) }

// parMinWork is the smallest m·n·k worth splitting (2^22, about 40 µs of
// work on one core). Waking the parked helper on the other vCPU costs
// tens of microseconds on this KVM guest: cubes of 101³ and 128³ ran
// slower or no faster on two threads, 161³ and up ran faster. Helpers that
// poll instead of parking measured slower still, as the polling competed
// with the caller for the host's core. A variable for BenchmarkThreshold.
var parMinWork = 1 << 22

// splitPlan cuts C into parts of whole tiles along one dimension.
type splitPlan struct {
	parts   int
	byRows  bool
	helpers int // goroutines besides the caller
}

// split decides how to cut the product among the threads. Each part packs
// its own copy of the operand that is not split, so C is cut across the
// dimension whose other operand is cheaper to pack again: columns (every
// part re-reads all of A, which is only packed when transposed) when
// m ≤ n, else rows (every part packs all of B).
//
// There are two parts per thread, claimed dynamically (see job.work), so
// that a helper that starts late, because its core is busy with another
// process, costs at most a part rather than holding up the whole call.
func (p *problem) split(kern *tileKernel) splitPlan {
	t := Threads()
	if t < 2 || p.m*p.n*p.k < parMinWork {
		return splitPlan{parts: 1}
	}
	rowTiles := (p.m + kern.mr - 1) / kern.mr
	colTiles := (p.n + kern.nr - 1) / kern.nr
	byRows := p.m > p.n
	if byRows && rowTiles < t && colTiles >= t {
		byRows = false
	} else if !byRows && colTiles < t && rowTiles >= t {
		byRows = true
	}
	tiles := colTiles
	if byRows {
		tiles = rowTiles
	}
	return splitPlan{parts: min(2*t, tiles), byRows: byRows, helpers: t - 1}
}

// bounds returns the block of C owned by part i: a contiguous range of
// whole tiles along the split dimension.
func (sp splitPlan) bounds(p *problem, kern *tileKernel, i int) (i0, i1, j0, j1 int) {
	if sp.byRows {
		tiles := (p.m + kern.mr - 1) / kern.mr
		i0 = i * tiles / sp.parts * kern.mr
		i1 = min(p.m, (i+1)*tiles/sp.parts*kern.mr)
		return i0, i1, 0, p.n
	}
	tiles := (p.n + kern.nr - 1) / kern.nr
	j0 = i * tiles / sp.parts * kern.nr
	j1 = min(p.n, (i+1)*tiles/sp.parts*kern.nr)
	return 0, p.m, j0, j1
}

// job is one parallel product; jobs are pooled so that a parallel call
// allocates nothing.
type job struct {
	p    problem
	im   *impl
	kern *tileKernel
	kc   int
	sp   splitPlan
	next atomic.Int32   // next part to claim
	wg   sync.WaitGroup // helpers that have not yet let go of the job
}

var jobPool = sync.Pool{New: func() any { return new(job) }}

// work claims and computes parts until none is left. Which goroutine
// computes a part does not change its result.
func (j *job) work() {
	for {
		i := int(j.next.Add(1)) - 1
		if i >= j.sp.parts {
			return
		}
		i0, i1, j0, j1 := j.sp.bounds(&j.p, j.kern, i)
		ws := getWorkspace(j.kern, j.kc, i1-i0, j1-j0)
		j.p.block(ws, j.im, j.kern, j.kc, i0, i1, j0, j1)
		putWorkspace(ws)
	}
}

// runParallel wakes the helpers and works on the parts alongside them.
func runParallel(p *problem, im *impl, kern *tileKernel, kc int, sp splitPlan) {
	j := jobPool.Get().(*job)
	j.p, j.im, j.kern, j.kc, j.sp = *p, im, kern, kc, sp
	j.next.Store(0)
	j.wg.Add(sp.helpers)
	for range sp.helpers {
		workCh <- j
	}
	j.work()
	// A helper that has not run yet finds nothing left and lets go at once;
	// the job is only recycled after that.
	j.wg.Wait()
	j.p = problem{} // drop the caller's slices
	jobPool.Put(j)
}

// workCh feeds the helper goroutines. They live for the whole process
// (one per extra thread ever requested) and block on the channel when idle.
var (
	workCh    = make(chan *job, 64)
	workersMu sync.Mutex
	nWorkers  int
)

func ensureWorkers(n int) {
	workersMu.Lock()
	defer workersMu.Unlock()
	for ; nWorkers < n; nWorkers++ {
		go worker()
	}
}

func worker() {
	for j := range workCh {
		j.work()
		j.wg.Done()
	}
}
