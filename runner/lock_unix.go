//go:build unix

package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// lockDir takes an exclusive lock on the run folder for this process. The kernel
// releases it when the process dies, so a crash never leaves a stale lock.
func lockDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Join(dir, ".shrink"), 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ".shrink", "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if who != "" {
				who = " (" + who + ")"
			}
			return nil, fmt.Errorf("%w: another shrink run is using %s%s; wait for it to finish or pick another --run-dir", ErrLocked, dir, who)
		}
		return nil, err
	}
	f.Truncate(0)
	fmt.Fprintf(f, "pid %d", os.Getpid())
	return func() {
		f.Truncate(0)
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// errBusy is a lock another process holds.
var errBusy = errors.New("in use by another process")

// flock opens path (a file it creates, or a folder) and locks it: shared or
// exclusive, waiting for it or not (then errBusy when it is held). Closing the
// file, or the process ending, releases it.
func flock(path string, exclusive, wait bool) (unlock func(), err error) {
	var f *os.File
	if st, statErr := os.Stat(path); statErr == nil && st.IsDir() {
		f, err = os.Open(path)
	} else {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	}
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errBusy
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
