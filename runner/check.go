package runner

import (
	"strings"

	"github.com/shrink-ml/shrink/compress"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
)

// Check finds, without training, what would make a run of a valid recipe fail
// where the recipe alone cannot tell: a model.checkpoint that is not a
// checkpoint (a PyTorch pickle, a truncated file) or holds another model; a
// checkpoint a stage names (teacher_checkpoint) that cannot be read; IDX data
// whose images or labels do not fit the model (the files are read, as a run
// would). validate runs it after loading.
func Check(recipe *pipeline.Recipe) pipeline.Diagnostics {
	var ds pipeline.Diagnostics
	if recipe.Model.Checkpoint != "" {
		if _, err := stages.LoadStart(recipe.Model); err != nil {
			ds = append(ds, recipe.Problem("model.checkpoint", err.Error()))
		}
	}
	for _, f := range recipe.Files() {
		if f.Key == "model.checkpoint" || len(f.Key) < 5 || f.Key[:5] == "data." {
			continue
		}
		if _, _, err := compress.ReadFile(f.Path); err != nil {
			ds = append(ds, recipe.Problem(f.Key, err.Error()))
		}
	}
	if d := recipe.Data; d != nil {
		if features, _, _, _ := d.Known(); features == 0 {
			// Only the files say what their rows hold (idx): read them.
			ds2, err := data.Load(*d, recipe.Dir, recipe.Seed)
			if err == nil {
				err = model.FitsData(recipe.Model, ds2)
			}
			if err != nil {
				for _, e := range config.AsErrors(err).Prefix("data") {
					path := e.Path
					if path == "" {
						path = "data"
					}
					ds = append(ds, recipe.Problem(path, strings.TrimPrefix(e.Msg, "data: ")))
				}
			}
		}
	}
	return ds
}
