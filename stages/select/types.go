package selection

import (
	"fmt"

	"github.com/shrink-ml/shrink/config"
)

// Metric is the metric key to rank by, or several: later keys break ties on
// earlier ones. The recipe writes one key as a string, several as a list.
type Metric []string

// DecodeConfig reads a string or a list of strings.
func (m *Metric) DecodeConfig(raw any) error {
	switch x := raw.(type) {
	case string:
		*m = Metric{x}
		return nil
	case []any:
		if len(x) == 0 {
			return fmt.Errorf("the list is empty: name at least one metrics.json key")
		}
		out := make(Metric, len(x))
		for i, v := range x {
			s, ok := v.(string)
			if !ok {
				return config.Errorf(fmt.Sprint(i), "must be a metrics.json key, got %s", config.Describe(v))
			}
			out[i] = s
		}
		*m = out
		return nil
	}
	return fmt.Errorf("must be a metrics.json key (metric: accuracy) or a list of them (metric: [size_bytes, params_nonzero]), got %s", config.Describe(raw))
}

// ConfigSchema: a key, or a non-empty list of keys.
func (*Metric) ConfigSchema() map[string]any {
	return map[string]any{"oneOf": []any{
		map[string]any{"type": "string"},
		map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "minItems": 1},
	}}
}

// StageID is a reference to a stage by its recipe id.
type StageID string

// ConfigSchema gives editors the stage id pattern.
func (StageID) ConfigSchema() map[string]any {
	return map[string]any{"type": "string", "pattern": "^[a-z0-9_-]+$"}
}
