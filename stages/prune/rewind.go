package prune

import (
	"encoding/json"
	"fmt"

	"github.com/shrink-ml/shrink/config"
)

// Rewind is where the lottery ticket resets the surviving weights each round:
// init (the start model's weights, Frankle & Carbin's original) or {epoch: k}
// (their values after epoch k of the first training: "late rewinding", which
// keeps tickets working on larger networks). Epoch 0 is init.
type Rewind struct {
	Epoch int
}

// DecodeConfig reads init or {epoch: k}.
func (r *Rewind) DecodeConfig(raw any) error {
	switch x := raw.(type) {
	case string:
		if x != "init" {
			return fmt.Errorf("must be init or {epoch: K}, got the string %q", x)
		}
		*r = Rewind{}
		return nil
	case map[string]any:
		var e struct {
			Epoch int `json:"epoch" minimum:"0" doc:"rewind to the weights after this epoch of the first training"`
		}
		if errs := config.Decode(x, &e); len(errs) > 0 {
			return errs
		}
		if _, ok := x["epoch"]; !ok {
			return config.Errorf("epoch", "missing: write {epoch: K} to rewind to the weights after epoch K of the first training")
		}
		*r = Rewind{Epoch: e.Epoch}
		return nil
	}
	return fmt.Errorf("must be init or {epoch: K}, got %s", config.Describe(raw))
}

// String prints the rewind point.
func (r Rewind) String() string {
	if r.Epoch == 0 {
		return "init"
	}
	return fmt.Sprintf("epoch %d", r.Epoch)
}

// MarshalJSON writes "init" or {"epoch": k}.
func (r Rewind) MarshalJSON() ([]byte, error) {
	if r.Epoch == 0 {
		return json.Marshal("init")
	}
	return json.Marshal(map[string]int{"epoch": r.Epoch})
}

// ConfigSchema admits a string or a mapping; DecodeConfig says what is wrong
// with a bad one in one message (an anyOf would report a failure per branch).
func (*Rewind) ConfigSchema() map[string]any {
	return map[string]any{"type": []any{"string", "object"}}
}
