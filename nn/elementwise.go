package nn

import (
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/par"
)

// elementwise spreads an op over its n elements in contiguous parts, on the
// cores gemm.Threads grants once there are enough values to pay for waking
// a goroutine. Each element is computed alike whoever runs it, so results
// do not depend on the thread count.
type elementwise struct{ n, parts int }

// do runs t's parts (t.Run calls span) and returns when all are done.
func (e *elementwise) do(t par.Task, n int) {
	e.n, e.parts = n, min(gemm.Threads(), max(1, n/minParallel))
	par.Do(t, e.parts, e.parts)
}

// span is part's range of elements.
func (e *elementwise) span(part int) (lo, hi int) {
	return part * e.n / e.parts, (part + 1) * e.n / e.parts
}
