package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shrink-ml/shrink/model"
)

// progressBar draws one line of training progress on a terminal and keeps log
// lines from tangling with it: every log write clears the bar first. It is also
// the log writer's destination. A lone stage gets the full bar; stages running
// in parallel share the line, each with its epoch and percentage.
type progressBar struct {
	mu      sync.Mutex
	out     io.Writer
	enabled bool
	shown   bool
	last    time.Time
	width   int // the terminal's columns (0: unknown, 80 assumed)
	active  map[string]model.Progress
	order   []string // active stages, by when they started
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
		if p.active == nil {
			p.active = map[string]model.Progress{}
		}
		if pr.Epochs == 0 { // the stage ended
			delete(p.active, stage)
			p.order = slices.DeleteFunc(p.order, func(s string) bool { return s == stage })
			p.clearLocked()
			return
		}
		if _, ok := p.active[stage]; !ok {
			p.order = append(p.order, stage)
		}
		p.active[stage] = pr
		if time.Since(p.last) < 100*time.Millisecond && pr.Batch != pr.Batches {
			return
		}
		p.last = time.Now()
		// One terminal row at most: a wrapped line would leave its first row
		// behind at every redraw (\r and erase-line reach only the last).
		line, width := p.line(), p.width
		if width <= 0 {
			width = 80
		}
		if r := []rune(line); len(r) > width-1 {
			line = string(r[:max(width-4, 1)]) + "..."
		}
		fmt.Fprintf(p.out, "\r\033[K%s", line)
		p.shown = true
	}
}

// line is the bar's text: the full bar for one stage, a summary per stage for
// several.
func (p *progressBar) line() string {
	if len(p.order) == 1 {
		stage := p.order[0]
		pr := p.active[stage]
		const width = 24
		filled := width * pr.Batch / max(pr.Batches, 1)
		bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
		return fmt.Sprintf("%s epoch %d/%d [%s] %d/%d loss %.4f %.0f samples/s ETA %s",
			stage, pr.Epoch, pr.Epochs, bar, pr.Batch, pr.Batches, pr.Loss, pr.SamplesPerSec, pr.Remain.Round(time.Second))
	}
	parts := make([]string, len(p.order))
	for i, stage := range p.order {
		pr := p.active[stage]
		parts[i] = fmt.Sprintf("%s %d/%d %d%%", stage, pr.Epoch, pr.Epochs, 100*pr.Batch/max(pr.Batches, 1))
	}
	return strings.Join(parts, " | ")
}
