package all_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
	_ "github.com/shrink-ml/shrink/stages/all"
)

// FuzzLoadRecipe is pipeline's FuzzParse with the real stage types, so every
// stage's decoders (prune's amount and n, distill's student, select's bounds)
// and the architecture checks see arbitrary input. Beyond "no panic, every
// problem placed": an accepted recipe, written back as YAML, loads again to the
// same stages.
func FuzzLoadRecipe(f *testing.F) {
	for _, pattern := range []string{"../../testdata/recipes/bad/*.yaml", "../../recipes/*.yaml", "../../testdata/graph/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		r, err := pipeline.Parse("f.yaml", src, stages.Default, pipeline.Options{})
		if err != nil {
			ds, ok := err.(pipeline.Diagnostics)
			if !ok || len(ds) == 0 {
				t.Fatalf("not diagnostics: %v", err)
			}
			for _, d := range ds {
				if d.Pos.Line < 1 || d.Pos.Col < 1 || d.Msg == "" {
					t.Fatalf("diagnostic without a position or message: %q", d.String())
				}
			}
			return
		}
		out, err := r.MarshalYAML()
		if err != nil {
			t.Fatalf("accepted recipe does not marshal: %v", err)
		}
		again, err := pipeline.Parse("f.yaml", out, stages.Default, pipeline.Options{})
		if err != nil {
			t.Fatalf("accepted recipe, written back, is refused:\n%s\n%v", out, err)
		}
		if !slices.Equal(again.StageIDs(), r.StageIDs()) {
			t.Fatalf("stages %v, written back %v", r.StageIDs(), again.StageIDs())
		}
	})
}
