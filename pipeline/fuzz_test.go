package pipeline

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzParse feeds the loader arbitrary recipes, seeded with every recipe in the
// repository: it must never panic, every problem must carry a position, and an
// accepted recipe must list each stage after the stages it reads.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"../testdata/recipes/bad/*.yaml", "../recipes/*.yaml", "../testdata/recipes/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(head + "  a: {type: xform, matrix: {epochs: [1, 2]}}\n  b: {type: teach, needs: [a], teacher: a}\n  c: {type: pick, needs: [b]}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		r, err := Parse("f.yaml", src, reg, Options{})
		if err != nil {
			ds, ok := err.(Diagnostics)
			if !ok {
				t.Fatalf("not diagnostics: %v", err)
			}
			if len(ds) == 0 {
				t.Fatal("empty diagnostics")
			}
			for _, d := range ds {
				if d.Pos.Line < 1 || d.Pos.Col < 1 || d.Msg == "" {
					t.Fatalf("diagnostic without a position or message: %q", d.String())
				}
			}
			return
		}
		seen := map[string]bool{}
		for _, s := range r.Stages {
			for _, d := range s.Deps() {
				if !seen[d] {
					t.Fatalf("stage %s runs before its input %s", s.ID, d)
				}
			}
			if seen[s.ID] {
				t.Fatalf("duplicate stage id %s", s.ID)
			}
			seen[s.ID] = true
		}
		if len(r.Stages) == 0 || !slices.ContainsFunc(r.Stages, func(s *Stage) bool { return s.Config != nil }) {
			t.Fatal("accepted a recipe without stages")
		}
	})
}
