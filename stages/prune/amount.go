package prune

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/shrink-ml/shrink/config"
)

// Amount is how much one prune takes, as torch.nn.utils.prune reads it: an
// integer is a count (amount: 1 prunes one weight), a number with a decimal
// point is a fraction in [0, 1] of what is still unpruned (amount: 1.0 prunes
// all). YAML's int/float distinction is the whole point, so it is kept here
// rather than in a float64. The zero value means "not set".
type Amount struct {
	kind     amountKind
	count    int
	fraction float64
}

type amountKind uint8

const (
	amountUnset amountKind = iota
	amountCount
	amountFraction
)

// Count returns an amount that prunes n units.
func Count(n int) Amount { return Amount{kind: amountCount, count: n} }

// Fraction returns an amount that prunes round(f × unpruned) units.
func Fraction(f float64) Amount { return Amount{kind: amountFraction, fraction: f} }

// IsSet reports whether the recipe gave an amount.
func (a Amount) IsSet() bool { return a.kind != amountUnset }

// IsCount reports whether the amount is an integer count.
func (a Amount) IsCount() bool { return a.kind == amountCount }

// Of is the number of units (weights, channels: unit names them for errors) to
// prune out of the unpruned ones: a count as is (an error when it exceeds them),
// a fraction rounded half to even like Python's round, on the float64 product.
func (a Amount) Of(unpruned int, unit string) (int, error) {
	switch a.kind {
	case amountCount:
		if a.count > unpruned {
			return 0, fmt.Errorf("amount %d is more than the %d %s still unpruned: lower it, or write a fraction (amount: 0.5)", a.count, unpruned, unit)
		}
		return a.count, nil
	case amountFraction:
		return int(math.RoundToEven(a.fraction * float64(unpruned))), nil
	}
	return 0, fmt.Errorf("amount is not set")
}

// String prints the amount as the recipe writes it: 3, 0.5, 1.0.
func (a Amount) String() string {
	switch a.kind {
	case amountCount:
		return strconv.Itoa(a.count)
	case amountFraction:
		s := strconv.FormatFloat(a.fraction, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return s
	}
	return "unset"
}

// MarshalJSON keeps the kind: a count is 1, a fraction is 1.0, so the two never
// share a cache key.
func (a Amount) MarshalJSON() ([]byte, error) {
	if a.kind == amountUnset {
		return []byte("null"), nil
	}
	return []byte(a.String()), nil
}

// DecodeConfig reads an integer count or a fractional number from the recipe.
func (a *Amount) DecodeConfig(raw any) error {
	switch x := raw.(type) {
	case int, int64, uint64:
		n, ok := config.AsInt(x)
		if !ok || n > math.MaxInt32 {
			return fmt.Errorf("the count %v is too large", x)
		}
		if n < 0 {
			return fmt.Errorf("a count cannot be negative, got %d", n)
		}
		*a = Count(int(n))
	case float64:
		if x >= 0 && x <= 1 {
			*a = Fraction(x)
			return nil
		}
		got := config.FormatNumber(x)
		if x == math.Trunc(x) && x > 1 && x < math.MaxInt32 {
			return fmt.Errorf("a fraction must be in [0, 1], got %s.0; to prune %s units write the integer %s (no decimal point)", got, got, got)
		}
		return fmt.Errorf("a fraction must be in [0, 1], got %s; to prune a count write an integer", got)
	default:
		return fmt.Errorf("must be an integer count (amount: 100) or a fraction in [0, 1] (amount: 0.5), got %s", config.Describe(raw))
	}
	return nil
}

// ConfigSchema accepts any non-negative number; DecodeConfig tells counts from
// fractions, which JSON Schema cannot (1.0 is an integer to it).
func (*Amount) ConfigSchema() map[string]any {
	return map[string]any{"type": "number", "minimum": 0}
}
