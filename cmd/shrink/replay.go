package main

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
)

// replayRecipe rebuilds the recipe a run.json recorded, as resolved then: the
// same keys, overrides included, with relative paths anchored where the recipe
// was.
func (a *app) replayRecipe(manifestPath string) (*pipeline.Recipe, *runner.Manifest, error) {
	man, err := runner.ReadManifestFile(manifestPath)
	if err != nil {
		return nil, nil, usageError{err}
	}
	if man.Recipe.YAML == "" {
		return nil, nil, usagef("%s records no resolved recipe to replay", manifestPath)
	}
	file := filepath.Join(man.Recipe.Dir, filepath.Base(man.Recipe.File))
	r, err := pipeline.Parse(file, []byte(man.Recipe.YAML), a.registry, pipeline.Options{})
	if err != nil {
		return nil, nil, err
	}
	// The same recipe: checkpoints record the original file's digest.
	r.SHA256 = man.Recipe.SHA256
	return r, man, nil
}

// checkReplay compares a replay's checkpoints with the recorded ones and prints
// the comparison; it fails when any differs.
func (a *app) checkReplay(want, got *runner.Manifest) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tRECORDED\tREPLAYED\tMATCH")
	bad := 0
	for _, g := range got.Stages {
		w := want.Stage(g.ID)
		recorded := "-"
		if w != nil {
			recorded = short(w.SHA256)
		}
		match := "yes"
		if w == nil || w.SHA256 == "" || w.SHA256 != g.SHA256 {
			match = "NO"
			bad++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.ID, recorded, short(g.SHA256), match)
	}
	tw.Flush()
	if bad > 0 {
		return fmt.Errorf("replay: %d of %d checkpoints differ from the recorded run", bad, len(got.Stages))
	}
	fmt.Fprintf(a.stdout, "replay: all %d checkpoints match the recorded run\n", len(got.Stages))
	return nil
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	if sum == "" {
		return "-"
	}
	return sum
}
