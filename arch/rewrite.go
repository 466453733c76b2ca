package arch

import (
	"encoding/json"
	"maps"
)

// SetKeys returns the layer with some of its type's keys changed, as if the
// recipe had written them: the config is decoded afresh (the original is not
// touched), so graph rewrites (structured pruning's narrower outs, batch norm
// folding's conv bias) need no knowledge of the layer types' structs.
func SetKeys(l LayerSpec, keys map[string]any) (LayerSpec, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return l, err
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return l, err
	}
	maps.Copy(raw, keys)
	if b, err = json.Marshal(raw); err != nil {
		return l, err
	}
	var out LayerSpec
	if err := out.UnmarshalJSON(b); err != nil {
		return l, err
	}
	return out, nil
}
