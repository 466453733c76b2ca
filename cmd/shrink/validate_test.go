package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
)

// TestBadRecipes runs every recipe in testdata/recipes/bad through the loader with
// the built-in stages and compares the diagnostics with the .golden file beside
// it. Regenerate with: go test ./cmd/shrink -run TestBadRecipes -update
func TestBadRecipes(t *testing.T) {
	files, err := filepath.Glob("../../testdata/recipes/bad/*.yaml")
	if err != nil || len(files) < 30 {
		t.Fatalf("want at least 30 bad recipes, found %d (%v)", len(files), err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = pipeline.Parse(name, src, stages.Default, pipeline.Options{})
			ds, ok := err.(pipeline.Diagnostics)
			if !ok || len(ds) == 0 {
				t.Fatalf("want diagnostics, got %v", err)
			}
			for _, d := range ds {
				if d.Pos.Origin == "" && (d.Pos.Line < 1 || d.Pos.Col < 1) {
					t.Errorf("diagnostic without a position: %s", d)
				}
			}
			got := ds.Error() + "\n"
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("diagnostics differ from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestShippedRecipesValid keeps every recipe in recipes/ valid.
func TestShippedRecipesValid(t *testing.T) {
	files, _ := filepath.Glob("../../recipes/*.yaml")
	if len(files) == 0 {
		t.Fatal("no recipes found")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if _, err := pipeline.Load(path, stages.Default, pipeline.Options{}); err != nil {
				t.Fatal(err)
			}
			src, _ := os.ReadFile(path)
			if !strings.HasPrefix(string(src), "# yaml-language-server: $schema=../schemas/recipe.schema.json") {
				t.Error("the first line should point editors at the schema: # yaml-language-server: $schema=../schemas/recipe.schema.json")
			}
		})
	}
}
