package pipeline

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// positions maps dotted key paths ("stages.prune.amount", "stages.prune.layers.1")
// to where they appear: the key itself and its value.
type positions struct {
	file  string
	key   map[string]Pos
	value map[string]Pos
	// origin marks paths set by an override; everything below them inherits it.
	origin map[string]string
	// outOfRange are the integers too large for int64, by path (see tooLarge).
	outOfRange map[string]Diagnostic
	// values counts the values made from the YAML, aliases expanded.
	values int
	// warnings found while layering the overrides.
	warnings Diagnostics
	// early are problems found while layering the overrides, at positions no
	// later check should report again.
	early Diagnostics
}

// MaxRecipeValues bounds a recipe's values (keys, scalars, lists, mappings)
// once its aliases are expanded: far beyond any real recipe (a sweep of a
// hundred stages has a few thousand), far below what exhausts memory.
const MaxRecipeValues = 100_000

func newPositions(file string) *positions {
	return &positions{file: file, key: map[string]Pos{}, value: map[string]Pos{}, origin: map[string]string{}, outOfRange: map[string]Diagnostic{}}
}

// ofKey is the position of the key at path (for "unknown key" and the like); ofValue
// of its value (for wrong values). Both fall back to the nearest ancestor that exists,
// so a missing key points at the mapping that should hold it.
func (p *positions) ofKey(path string) Pos   { return p.lookup(path, p.key) }
func (p *positions) ofValue(path string) Pos { return p.lookup(path, p.value) }

func (p *positions) lookup(path string, table map[string]Pos) Pos {
	for q := path; ; q = parent(q) {
		if o, ok := p.origin[q]; ok {
			return Pos{File: p.file, Origin: o}
		}
		if q == "" {
			break
		}
	}
	for q := path; q != ""; q = parent(q) {
		if pos, ok := table[q]; ok {
			return pos
		}
		if pos, ok := p.value[q]; ok {
			return pos
		}
	}
	return Pos{File: p.file, Line: 1, Col: 1}
}

func parent(path string) string {
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return ""
	}
	return path[:i]
}

// toTree converts a YAML node to the plain tree koanf and the validators work on
// (map[string]any, []any, string, bool, int, float64, nil), recording positions.
// It rejects what a recipe must not contain: duplicate keys and non-scalar keys.
func toTree(n *yaml.Node, path string, pos *positions, diags *Diagnostics) any {
	here := Pos{File: pos.file, Line: n.Line, Col: n.Column}
	// Aliases repeat what they name, so a small file can expand to billions of
	// values (nested *a references): count every value made, and stop.
	if pos.values++; pos.values > MaxRecipeValues {
		if pos.values == MaxRecipeValues+1 {
			*diags = append(*diags, Diagnostic{here, fmt.Sprintf(
				"the recipe expands to more than %d values (YAML aliases such as *name repeat what they refer to): write it out plainly", MaxRecipeValues)})
		}
		return nil
	}
	if path != "" {
		if _, seen := pos.value[path]; !seen {
			pos.value[path] = here
		}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return toTree(n.Content[0], path, pos, diags)
	case yaml.AliasNode:
		return toTree(n.Alias, path, pos, diags)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				merged, _ := toTree(v, path, pos, diags).(map[string]any)
				for mk, mv := range merged {
					if _, ok := m[mk]; !ok {
						m[mk] = mv
					}
				}
				continue
			}
			kpos := Pos{File: pos.file, Line: k.Line, Col: k.Column}
			if k.Kind != yaml.ScalarNode {
				*diags = append(*diags, Diagnostic{kpos, "a key must be a plain name, not a list or mapping"})
				continue
			}
			key := k.Value
			child := joinPath(path, key)
			if _, dup := m[key]; dup {
				first := pos.key[child]
				*diags = append(*diags, Diagnostic{kpos, fmt.Sprintf("%s: duplicate key (first at line %d)", child, first.Line)})
				continue
			}
			pos.key[child] = kpos
			m[key] = toTree(v, child, pos, diags)
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, c := range n.Content {
			s[i] = toTree(c, joinPath(path, strconv.Itoa(i)), pos, diags)
		}
		return s
	case yaml.ScalarNode:
		if tooLarge(n) {
			prefix := ""
			if path != "" {
				prefix = path + ": "
			}
			// Reported once the overrides are applied, unless one replaced it.
			pos.outOfRange[path] = Diagnostic{here, fmt.Sprintf("%s%s is out of range: integers in a recipe are from %d to %d",
				prefix, n.Value, math.MinInt64, math.MaxInt64)}
		}
		return scalar(n)
	}
	return nil
}

// rangeDiags reports the out-of-range integers that no override replaced.
func (p *positions) rangeDiags() Diagnostics {
	var ds Diagnostics
	for path, d := range p.outOfRange {
		if p.ofValue(path).Origin != "" && d.Pos.Origin == "" {
			continue // an override replaced the file's value
		}
		ds = append(ds, d)
	}
	return ds
}

// integerLiteral is a plain decimal integer as YAML writes it.
var integerLiteral = regexp.MustCompile(`^[-+]?[0-9][0-9_]*$`)

// tooLarge says a scalar is an integer beyond int64: YAML resolves one past
// uint64 as a float and one past int64 as a uint64, which would otherwise
// round, or turn into 0 where an integer is read.
func tooLarge(n *yaml.Node) bool {
	switch n.Tag {
	case "!!int":
		var u uint64
		return n.Decode(&u) == nil && u > math.MaxInt64
	case "!!float":
		return n.Style == 0 && integerLiteral.MatchString(n.Value)
	}
	return false
}

// scalar decodes a YAML scalar by its resolved tag, keeping YAML's distinction between
// 1 (an int) and 1.0 (a float): prune amounts depend on it.
func scalar(n *yaml.Node) any {
	var v any
	if err := n.Decode(&v); err != nil {
		return n.Value
	}
	switch x := v.(type) {
	case float64:
		// JSON, under every recipe, has no infinity or NaN: YAML's .inf becomes
		// the word, which keys that accept it (prune's n) read and others reject.
		switch {
		case math.IsInf(x, 1):
			return "inf"
		case math.IsInf(x, -1):
			return "-inf"
		case math.IsNaN(x):
			return "nan"
		}
	case int64:
		return int(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int(x)
		}
		return float64(x) // and toTree reports it
	}
	return v
}

// parseValue reads an override's value as YAML, as the spec asks of --set.
func parseValue(s string) (any, error) {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s), &n); err != nil {
		return nil, err
	}
	if n.Kind == 0 || len(n.Content) == 0 {
		return "", nil
	}
	var ds Diagnostics
	pos := newPositions("")
	v := toTree(n.Content[0], "", pos, &ds)
	ds = append(ds, pos.rangeDiags()...)
	if len(ds) > 0 {
		return nil, valueError(ds[0].Msg)
	}
	return v, nil
}

// valueError is an override value that is valid YAML but not a recipe value.
type valueError string

func (e valueError) Error() string { return string(e) }

func joinPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "." + b
}
