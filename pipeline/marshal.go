package pipeline

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MarshalYAML writes a recipe tree (Recipe.Resolved) back as YAML that parses to
// the same tree: keys sorted, and every float written as a float (1.0, not 1),
// because a prune amount of 1.0 and of 1 mean different things.
func MarshalYAML(tree map[string]any) ([]byte, error) {
	return yaml.Marshal(node(tree))
}

// MarshalYAML writes the resolved recipe back as YAML (see the function
// MarshalYAML) in the order a reader expects: version, name, seed, model, data,
// then the stages as the recipe listed them. The order matters beyond looks:
// among stages ready at once, the recipe's order decides which runs first.
func (r *Recipe) MarshalYAML() ([]byte, error) {
	n := node(r.Resolved)
	orderKeys(n, []string{"version", "name", "seed", "model", "data", "stages"})
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "stages" {
			orderKeys(n.Content[i+1], r.baseOrder)
		}
	}
	return yaml.Marshal(n)
}

// orderKeys puts a mapping's keys that first lists in its order, the rest after
// them as they were (sorted).
func orderKeys(m *yaml.Node, first []string) {
	type pair struct{ k, v *yaml.Node }
	pairs := make([]pair, 0, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		pairs = append(pairs, pair{m.Content[i], m.Content[i+1]})
	}
	rank := func(k string) int {
		if i := slices.Index(first, k); i >= 0 {
			return i
		}
		return len(first)
	}
	slices.SortStableFunc(pairs, func(a, b pair) int { return rank(a.k.Value) - rank(b.k.Value) })
	m.Content = m.Content[:0]
	for _, p := range pairs {
		m.Content = append(m.Content, p.k, p.v)
	}
}

func node(v any) *yaml.Node {
	switch x := v.(type) {
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, node(x[k]))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, e := range x {
			n.Content = append(n.Content, node(e))
		}
		return n
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: x}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(x)}
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(x)}
	case float64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: floatText(x)}
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: FormatValue(v)}
}

func floatText(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return ".inf"
	case math.IsInf(x, -1):
		return "-.inf"
	case math.IsNaN(x):
		return ".nan"
	}
	s := strconv.FormatFloat(x, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}
