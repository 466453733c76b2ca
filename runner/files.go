package runner

import (
	"fmt"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/pipeline"
)

// fileDigests are the sha256 of the files a stage's config names (see
// config.FileReferrer), by the key naming them; nil when it names none.
func (r *Runner) fileDigests(s *pipeline.Stage) (map[string]string, error) {
	fr, ok := s.Config.(config.FileReferrer)
	if !ok {
		return nil, nil
	}
	var out map[string]string
	for _, f := range fr.FileReferences() {
		sum, err := checkpoint.Digest(r.recipe.Path(f.File))
		if err != nil {
			return nil, fmt.Errorf("stages.%s.%s: %w", s.Base, f.Path, err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[f.Path] = sum
	}
	return out, nil
}
