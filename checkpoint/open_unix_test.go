//go:build unix

package checkpoint

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNotRegularFiles: a device is never read (ReadFile and Digest would read
// /dev/zero forever) and a FIFO never opened (the open itself would block).
func TestNotRegularFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	for _, path := range []string{"/dev/zero", fifo, t.TempDir()} {
		t.Run(path, func(t *testing.T) {
			done := make(chan error, 2)
			go func() {
				_, err := ReadFile(path)
				done <- err
				_, err = Digest(path)
				done <- err
			}()
			for range 2 {
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
						t.Fatalf("got %v", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("still reading after 10 s")
				}
			}
		})
	}
}
