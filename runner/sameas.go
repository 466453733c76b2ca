package runner

import (
	"fmt"
	"os"
	"slices"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/pipeline"
)

// copyInput writes the stored checkpoint of input id to dst unchanged, for a
// stage whose output is one of its inputs (stages.Result.SameAs: select).
// Byte-identical output means the stages after it see the same digest, and
// stay cached, whenever the same input is chosen again.
func (ex *execution) copyInput(s *pipeline.Stage, id, dst string) error {
	if !slices.Contains(s.Needs, id) {
		return fmt.Errorf("stage returned %q as its output, which is not one of its inputs", id)
	}
	ex.mu.Lock()
	key := ex.keys[id]
	ex.mu.Unlock()
	b, err := os.ReadFile(ex.r.store.File(key, "model.safetensors"))
	if err != nil {
		return fmt.Errorf("input %s: %w", id, err)
	}
	return checkpoint.WriteBytes(dst, b)
}
