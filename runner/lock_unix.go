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
