package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/model"
)

// TestProgressBarParallelStages: one stage gets the full bar; two running at
// once share the line; a stage that ends leaves it, and a log line clears it.
func TestProgressBarParallelStages(t *testing.T) {
	var out bytes.Buffer
	p := &progressBar{out: &out, enabled: true, width: 120}
	last := func() string {
		s := out.String()
		return s[strings.LastIndex(s, "\r\033[K")+len("\r\033[K"):]
	}
	a, b := p.sink("train"), p.sink("prune@amount=0.5")
	a(model.Progress{Epoch: 1, Epochs: 3, Batch: 10, Batches: 10})
	if got := last(); !strings.HasPrefix(got, "train epoch 1/3 [========================] 10/10") {
		t.Errorf("one stage: %q", got)
	}
	b(model.Progress{Epoch: 2, Epochs: 2, Batch: 5, Batches: 5})
	if got := last(); got != "train 1/3 100% | prune@amount=0.5 2/2 100%" {
		t.Errorf("two stages: %q", got)
	}
	a(model.Progress{}) // train ended
	b(model.Progress{Epoch: 2, Epochs: 2, Batch: 5, Batches: 5})
	if got := last(); !strings.HasPrefix(got, "prune@amount=0.5 epoch 2/2") {
		t.Errorf("after train ended: %q", got)
	}
	narrow := &progressBar{out: &out, enabled: true, width: 40}
	narrow.sink("train")(model.Progress{Epoch: 1, Epochs: 3, Batch: 10, Batches: 10})
	if got := last(); len([]rune(got)) != 39 || !strings.HasSuffix(got, "...") {
		t.Errorf("a 40-column terminal gets %d columns: %q", len([]rune(got)), got)
	}
	p.Write([]byte("a log line\n"))
	if !strings.HasSuffix(out.String(), "\r\033[Ka log line\n") {
		t.Errorf("a log line does not clear the bar: %q", out.String())
	}
}
