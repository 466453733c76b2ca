// Package all imports every built-in stage type, registering them in
// stages.Default.
package all

import (
	_ "github.com/shrink-ml/shrink/stages/distill"
	_ "github.com/shrink-ml/shrink/stages/lora"
	_ "github.com/shrink-ml/shrink/stages/lowrank"
	_ "github.com/shrink-ml/shrink/stages/prune"
	_ "github.com/shrink-ml/shrink/stages/qat"
	_ "github.com/shrink-ml/shrink/stages/quantize"
	_ "github.com/shrink-ml/shrink/stages/select"
	_ "github.com/shrink-ml/shrink/stages/train"
)
