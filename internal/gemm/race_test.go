//go:build race

package gemm

// raceEnabled: under the race detector sync.Pool drops items on purpose,
// so the zero-allocation test does not apply.
const raceEnabled = true
