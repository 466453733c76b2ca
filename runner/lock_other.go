//go:build !unix

package runner

// lockDir is a no-op where flock is missing; concurrent runs are not detected.
func lockDir(dir string) (func(), error) { return func() {}, nil }
