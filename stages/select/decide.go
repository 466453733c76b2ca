package selection

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Candidate is one input as the select stage judged it: the values it was
// ranked and constrained by, and every constraint it failed.
type Candidate struct {
	Stage  string             `json:"stage"`
	Values map[string]float64 `json:"values"`
	// Qualified: every metric present and every constraint met.
	Qualified bool     `json:"qualified"`
	Failed    []string `json:"failed,omitempty"`
}

// OK reports whether the candidate met every constraint and has every
// ranking metric.
func (c *Candidate) OK() bool { return len(c.Failed) == 0 }

// Limit is a constraint with relative_to resolved to numbers.
type Limit struct {
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
	// RelativeTo and Base are the stage the bounds are offsets from and its
	// value of the metric; Offsets are the recipe's min and max.
	RelativeTo string       `json:"relative_to,omitempty"`
	Base       *float64     `json:"base,omitempty"`
	Offsets    *[2]*float64 `json:"-"`
}

// Decision is what the select stage decided, and why.
type Decision struct {
	Selected   string           `json:"selected"` // "" when no candidate qualified
	Candidates []*Candidate     `json:"candidates"`
	Limits     map[string]Limit `json:"constraints,omitempty"`
}

// limits resolves the where constraints; refs are each where key's
// relative_to stage and its metrics.json.
func (c *Config) limits(refs map[string]ref) (map[string]Limit, error) {
	out := map[string]Limit{}
	for _, k := range slices.Sorted(maps.Keys(c.Where)) {
		b := c.Where[k]
		if b == nil {
			continue
		}
		l := Limit{Min: b.Min, Max: b.Max}
		if b.RelativeTo != "" {
			r := refs[k]
			base, err := value(r.metrics, k)
			if err != nil {
				return nil, fmt.Errorf("where.%s.relative_to: stage %s %v", k, r.stage, err)
			}
			shift := func(d *float64) *float64 {
				if d == nil {
					return nil
				}
				v := base + *d
				return &v
			}
			l.Min, l.Max = shift(b.Min), shift(b.Max)
			l.RelativeTo, l.Base, l.Offsets = r.stage, &base, &[2]*float64{b.Min, b.Max}
		}
		out[k] = l
	}
	return out, nil
}

// ref is a relative_to stage and its metrics.
type ref struct {
	stage   string
	metrics map[string]any
}

// decide judges the candidates (ids in run order, with their metrics.json)
// and picks the best of those that qualify: ties go to the first.
func (c *Config) decide(ids []string, metrics map[string]map[string]any, limits map[string]Limit) *Decision {
	d := &Decision{Limits: limits}
	keys := slices.Clone([]string(c.Metric))
	for _, k := range slices.Sorted(maps.Keys(limits)) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	var best *Candidate
	for _, id := range ids {
		cand := &Candidate{Stage: id, Values: map[string]float64{}}
		d.Candidates = append(d.Candidates, cand)
		for _, k := range keys {
			v, err := value(metrics[id], k)
			if err != nil {
				cand.Failed = append(cand.Failed, err.Error())
				continue
			}
			cand.Values[k] = v
			if l, ok := limits[k]; ok {
				if why := l.check(k, v); why != "" {
					cand.Failed = append(cand.Failed, why)
				}
			}
		}
		cand.Qualified = cand.OK()
		if cand.Qualified && (best == nil || c.better(cand, best)) {
			best = cand
		}
	}
	if best != nil {
		d.Selected = best.Stage
	}
	return d
}

// better compares two qualified candidates by the ranking metrics in order.
func (c *Config) better(a, b *Candidate) bool {
	for _, k := range c.Metric {
		x, y := a.Values[k], b.Values[k]
		if x == y {
			continue
		}
		if c.Goal == Max {
			return x > y
		}
		return x < y
	}
	return false
}

// check says why v breaks the limit, or "".
func (l Limit) check(key string, v float64) string {
	from := func(side int) string {
		if l.Base == nil {
			return ""
		}
		return fmt.Sprintf(" (%s's %s%s)", l.RelativeTo, num(*l.Base), offset(*l.Offsets[side]))
	}
	// Bounds are inclusive; the slack forgives float rounding in base + offset.
	slack := func(x float64) float64 { return 1e-9 * max(1, math.Abs(x)) }
	switch {
	case l.Min != nil && v < *l.Min-slack(*l.Min):
		return fmt.Sprintf("%s %s is below the minimum %s%s", key, num(v), num(*l.Min), from(0))
	case l.Max != nil && v > *l.Max+slack(*l.Max):
		return fmt.Sprintf("%s %s is above the maximum %s%s", key, num(v), num(*l.Max), from(1))
	}
	return ""
}

// value reads a number from metrics.json contents: a key, or a dotted path
// into nested objects (layers.fc1.bits).
func value(m map[string]any, key string) (float64, error) {
	var v any = m
	for part := range strings.SplitSeq(key, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			v = nil
			break
		}
		v = obj[part]
	}
	var x float64
	switch n := v.(type) {
	case nil:
		return 0, fmt.Errorf("has no metric %s (its metrics.json has %s)", key, strings.Join(slices.Sorted(maps.Keys(m)), ", "))
	case float64:
		x = n
	case int:
		x = float64(n)
	case int64:
		x = float64(n)
	case json.Number:
		f, err := n.Float64()
		if err != nil {
			return 0, fmt.Errorf("metric %s is %q, not a number", key, n)
		}
		x = f
	default:
		return 0, fmt.Errorf("metric %s is %v, not a number", key, v)
	}
	if math.IsNaN(x) {
		return 0, fmt.Errorf("metric %s is NaN", key)
	}
	return x, nil
}

// num prints a metric value briefly: integers whole, others to 10 digits (so
// 0.9815 - 0.005 prints 0.9765, not 0.9765000000000001).
func num(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return strconv.FormatInt(int64(x), 10)
	}
	return strconv.FormatFloat(x, 'g', 10, 64)
}

func offset(d float64) string {
	if d < 0 {
		return " - " + num(-d)
	}
	return " + " + num(d)
}
