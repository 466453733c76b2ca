package pipeline

import (
	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
)

// StageType is what the pipeline needs to know of a stage plugin to validate and
// plan a recipe; the plugin's code that runs lives elsewhere (package stages), so
// validating never loads a tensor library.
type StageType struct {
	Name    string
	Summary string     // one line, for the schema and --help
	New     func() any // a pointer to the config struct holding the defaults
	// FanIn marks a stage that takes many input models (select): its needs may
	// list several stages, a matrix stage means all its branches, and it does not
	// fan out with them.
	FanIn bool
}

// Registry finds stage types by name.
type Registry interface {
	Lookup(name string) (StageType, bool)
	Types() []StageType // sorted by name
}

// DataUser is implemented by stage configs that train, calibrate or evaluate on
// the recipe's data only for some settings (prune with finetune, say).
type DataUser interface {
	UsesData() bool
}

// Trainer is implemented by stage configs whose use of data (DataUser) is not
// training (quantize calibrates): without it, a stage that uses data trains.
type Trainer interface {
	Trains() bool
}

// ModelMaker is implemented by configs of stages that can build a new model
// instead of transforming their input (distill with a student architecture): for
// them, needs may be empty without meaning "start from the recipe's model".
type ModelMaker interface {
	MakesModel() bool
}

// DataChecker is implemented by stage configs whose settings need something of
// the recipe's data section (prune's select: best_val needs a validation split).
// Errors name the stage's key at fault (config.Errorf("select", ...)).
type DataChecker interface {
	CheckData(d *data.Config) error
}

// ModelChecker is implemented by stage configs that name layers (layers,
// overrides, amounts, ranks): the pipeline follows the architecture along the
// DAG and hands each stage the one it will receive, so a misspelled layer fails
// validation instead of the run. Errors name the key (config.Errorf("layers.0", ...)).
type ModelChecker interface {
	CheckModel(in arch.Spec) error
}

// ArchMaker is implemented by stage configs whose output model can have another
// architecture than their input (distill with a student): ok is false when it
// has the input's.
type ArchMaker interface {
	OutputArch(recipe arch.Spec) (out arch.Spec, ok bool)
}

// ArchChanger is implemented by stage configs whose output architecture is a
// function of their input's (quantize and qat fold batch norms into the
// convolutions they quantize, so the batch norms' names are gone after them).
// An error leaves the input's architecture for the checks after the stage.
type ArchChanger interface {
	ChangeArch(in arch.Spec) (arch.Spec, error)
}
