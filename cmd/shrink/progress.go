package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/shrink-ml/shrink/model"
)

// progressBar draws one line of training progress on a terminal and keeps log
// lines from tangling with it: every log write clears the bar first. It is also
// the log writer's destination.
type progressBar struct {
	mu      sync.Mutex
	out     io.Writer
	enabled bool
	shown   bool
	last    time.Time
}

// Write passes log output through, clearing the bar first.
func (p *progressBar) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	return p.out.Write(b)
}

func (p *progressBar) clear() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

func (p *progressBar) clearLocked() {
	if p.shown {
		fmt.Fprint(p.out, "\r\033[K")
		p.shown = false
	}
}

// sink returns the progress callback for a stage.
func (p *progressBar) sink(stage string) func(model.Progress) {
	return func(pr model.Progress) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if time.Since(p.last) < 100*time.Millisecond && pr.Batch != pr.Batches {
			return
		}
		p.last = time.Now()
		const width = 24
		filled := width * pr.Batch / max(pr.Batches, 1)
		bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
		fmt.Fprintf(p.out, "\r\033[K%s epoch %d/%d [%s] %d/%d loss %.4f %.0f samples/s ETA %s",
			stage, pr.Epoch, pr.Epochs, bar, pr.Batch, pr.Batches, pr.Loss, pr.SamplesPerSec, pr.Remain.Round(time.Second))
		p.shown = true
	}
}
