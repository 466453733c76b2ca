// Package all imports every built-in stage type, registering them in
// stages.Default.
package all

import (
	_ "github.com/shrink-ml/shrink/stages/train"
)
