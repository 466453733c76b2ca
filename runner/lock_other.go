//go:build !unix

package runner

import "errors"

// lockDir is a no-op where flock is missing; concurrent runs are not detected.
func lockDir(dir string) (func(), error) { return func() {}, nil }

var errBusy = errors.New("in use by another process")

// flock is a no-op where flock is missing: gc cannot tell a running stage's
// work from a crashed one's there.
func flock(path string, exclusive, wait bool) (func(), error) { return func() {}, nil }
