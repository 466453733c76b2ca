package nn

import (
	"encoding/json"
	"fmt"

	"github.com/shrink-ml/shrink/config"
)

// Pair is a 2-D size as PyTorch's conv and pooling layers take it: one number
// for both dimensions (kernel: 3), or [height, width] (kernel: [3, 1]).
type Pair [2]int

// Square is a Pair with both dimensions n.
func Square(n int) Pair { return Pair{n, n} }

// DecodeConfig reads an integer or a list of two integers.
func (p *Pair) DecodeConfig(raw any) error {
	one := func(path string, x any) (int, error) {
		n, ok := config.AsInt(x)
		if !ok || n < 0 || n > 1<<20 {
			return 0, config.Errorf(path, "a whole number from 0 to 2^20, not %s", config.Describe(x))
		}
		return int(n), nil
	}
	if items, ok := raw.([]any); ok {
		if len(items) != 2 {
			return config.Errorf("", "one number or [height, width], not a list of %d", len(items))
		}
		var errs config.Errors
		for i, x := range items {
			n, err := one(fmt.Sprint(i), x)
			errs = append(errs, config.AsErrors(err)...)
			p[i] = n
		}
		return errs.Err()
	}
	n, err := one("", raw)
	*p = Square(n)
	return err
}

// ConfigSchema accepts a number or a pair.
func (Pair) ConfigSchema() map[string]any {
	return map[string]any{"type": []any{"integer", "array"}, "minimum": 0, "minItems": 2, "maxItems": 2,
		"items": map[string]any{"type": "integer", "minimum": 0}}
}

// MarshalJSON writes one number when both dimensions agree, as a recipe would.
func (p Pair) MarshalJSON() ([]byte, error) {
	if p[0] == p[1] {
		return json.Marshal(p[0])
	}
	return json.Marshal([2]int(p))
}

// outSize is the output length of a convolution or pooling along one
// dimension (PyTorch's floor mode).
func outSize(in, kernel, stride, padding, dilation int) int {
	return (in+2*padding-dilation*(kernel-1)-1)/stride + 1
}
