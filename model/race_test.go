//go:build race

package model

// raceEnabled: under the race detector sync.Pool drops items on purpose,
// so the zero-allocation tests do not apply.
const raceEnabled = true
