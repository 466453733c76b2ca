package prune

import (
	"encoding/json"
	"fmt"
	"iter"
	"math"

	"github.com/shrink-ml/shrink/config"
)

// Norm is ln_structured's n: the order of the norm that scores a channel, as
// torch.norm's p. Any p > 0 is a p-norm (1: sum of |w|, 2: Euclidean); inf is
// the largest |w| and -inf the smallest. The recipe writes a number, inf or
// -inf (YAML's .inf too), or fro (the Frobenius norm, that is 2).
type Norm float64

// DecodeConfig reads a positive number or one of inf, -inf, fro.
func (n *Norm) DecodeConfig(raw any) error {
	switch x := raw.(type) {
	case string:
		switch x {
		case "inf", "+inf":
			*n = Norm(math.Inf(1))
		case "-inf":
			*n = Norm(math.Inf(-1))
		case "fro":
			*n = 2
		case "nuc":
			return fmt.Errorf("the nuclear norm needs a matrix per channel and PyTorch's ln_structured rarely uses it: write 1, 2, inf or -inf")
		default:
			return fmt.Errorf("must be a positive number, inf, -inf or fro, got the string %q", x)
		}
		return nil
	}
	p, ok := config.AsFloat(raw)
	if !ok {
		return fmt.Errorf("must be a positive number, inf, -inf or fro, got %s", config.Describe(raw))
	}
	if math.IsNaN(p) || (p <= 0 && !math.IsInf(p, -1)) {
		return fmt.Errorf("must be a positive number (1, 2, ...), inf, -inf or fro, got %s", config.FormatNumber(p))
	}
	*n = Norm(p)
	return nil
}

// String prints the norm as a recipe writes it.
func (n Norm) String() string {
	switch {
	case math.IsInf(float64(n), 1):
		return "inf"
	case math.IsInf(float64(n), -1):
		return "-inf"
	}
	return config.FormatNumber(float64(n))
}

// MarshalJSON writes infinities as the strings inf and -inf (JSON has no
// infinity).
func (n Norm) MarshalJSON() ([]byte, error) {
	if math.IsInf(float64(n), 0) {
		return json.Marshal(n.String())
	}
	return json.Marshal(float64(n))
}

// ConfigSchema admits numbers and strings; DecodeConfig says what is wrong with
// a bad one in one message (an anyOf would report a failure per branch).
func (*Norm) ConfigSchema() map[string]any {
	return map[string]any{"type": []any{"number", "string"}}
}

// score is the norm of one channel's values.
func (n Norm) score(values iter.Seq[float32]) float64 {
	p := float64(n)
	switch {
	case math.IsInf(p, 1):
		m := 0.0
		for v := range values {
			m = max(m, math.Abs(float64(v)))
		}
		return m
	case math.IsInf(p, -1):
		m := math.Inf(1)
		for v := range values {
			m = min(m, math.Abs(float64(v)))
		}
		return m
	case p == 1:
		s := 0.0
		for v := range values {
			s += math.Abs(float64(v))
		}
		return s
	case p == 2:
		s := 0.0
		for v := range values {
			s += float64(v) * float64(v)
		}
		return math.Sqrt(s)
	}
	s := 0.0
	for v := range values {
		s += math.Pow(math.Abs(float64(v)), p)
	}
	return math.Pow(s, 1/p)
}
