package pipeline

import (
	"fmt"
	"strings"

	"github.com/shrink-ml/shrink/config"
)

// RecipeKeys are a recipe's top-level keys: what a SHRINK_ variable may set.
var RecipeKeys = []string{"version", "name", "seed", "model", "data", "stages"}

// warnings finds what is valid but likely not meant: stage configs' own
// (config.Warner), and a stage that starts from the recipe's model's random
// weights because its needs were left out, yet never trains them.
func (r *Recipe) warnings() Diagnostics {
	var ws Diagnostics
	for _, s := range r.Stages {
		if w, ok := s.Config.(config.Warner); ok {
			for _, e := range w.Warnings() {
				path := joinPath("stages."+s.Base, e.Path)
				ws = append(ws, Diagnostic{r.pos.ofValue(path), label(path) + e.Msg})
			}
		}
		if len(s.Needs) > 0 || r.Model.Checkpoint != "" || trains(s.Config) {
			continue
		}
		if m, ok := s.Config.(ModelMaker); ok && m.MakesModel() {
			continue
		}
		hint := ""
		if prev := r.trainedBefore(s); prev != "" {
			hint = fmt.Sprintf(" (did you mean needs: [%s]?)", prev)
		}
		ws = append(ws, Diagnostic{s.Pos, fmt.Sprintf("stages.%s: has no needs, so it starts from the model's random initial weights (no model.checkpoint), and it does not train them%s", s.Base, hint)})
	}
	return ws.Sort()
}

// trainedBefore names the last stage before s in the recipe that trains, the
// likely input a missing needs meant.
func (r *Recipe) trainedBefore(s *Stage) string {
	last := ""
	for _, o := range r.Stages {
		if o.Base == s.Base {
			return last
		}
		if trains(o.Config) && !strings.Contains(o.ID, "[") {
			last = o.ID
		}
	}
	return last
}

// trains says whether a stage config trains its model (Trainer, else
// DataUser); true when the config does not say, so there is no warning.
func trains(cfg any) bool {
	if t, ok := cfg.(Trainer); ok {
		return t.Trains()
	}
	if u, ok := cfg.(DataUser); ok {
		return u.UsesData()
	}
	return true
}
