package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// writeReference renders the recipe schema as a Markdown key reference: every
// section and stage type with each key's type, default and description.
func writeReference(w io.Writer, schema map[string]any) {
	fmt.Fprintln(w, "# Recipe key reference")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Generated from the stage registry (the same source as `schemas/recipe.schema.json`);")
	fmt.Fprintln(w, "regenerate with `go test ./cmd/shrink -run TestReferenceInSync -update`. The format and")
	fmt.Fprintln(w, "its rules are explained in [RECIPES.md](RECIPES.md).")
	props := schema["properties"].(map[string]any)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Top level")
	fmt.Fprintln(w)
	keyTable(w, "", map[string]any{
		"version": props["version"], "name": props["name"], "seed": props["seed"],
		"model":  map[string]any{"type": "object", "description": "the model: see below"},
		"data":   map[string]any{"type": "object", "description": "the data: see below"},
		"stages": map[string]any{"type": "object", "description": props["stages"].(map[string]any)["description"]},
	})
	for _, sec := range []string{"model", "data"} {
		fmt.Fprintf(w, "\n## `%s`\n\n", sec)
		keyTable(w, "", props[sec].(map[string]any)["properties"].(map[string]any))
	}
	defs := schema["$defs"].(map[string]any)
	names := make([]string, 0, len(defs))
	for n := range defs {
		if strings.HasPrefix(n, "stage-") && n != "stage-data-override" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	fmt.Fprintln(w, "\n## Stages\n\nEvery stage takes `type`, `needs`, `matrix`, `resources` and `data` (the data section's keys, merged over it):")
	fmt.Fprintln(w)
	first := defs[names[0]].(map[string]any)["properties"].(map[string]any)
	keyTable(w, "", map[string]any{"type": first["type"], "needs": first["needs"], "matrix": first["matrix"], "resources": first["resources"],
		"data": map[string]any{"type": "object", "description": first["data"].(map[string]any)["description"]}})
	for _, n := range names {
		d := defs[n].(map[string]any)
		typ := strings.TrimPrefix(n, "stage-")
		fmt.Fprintf(w, "\n### `%s`\n\n%s.\n\n", typ, d["description"])
		own := map[string]any{}
		for k, v := range d["properties"].(map[string]any) {
			switch k {
			case "type", "needs", "matrix", "resources", "data":
			default:
				own[k] = v
			}
		}
		keyTable(w, "", own)
	}
}

// keyTable prints one row per key, nested objects flattened as parent.child.
func keyTable(w io.Writer, prefix string, props map[string]any) {
	if prefix == "" {
		fmt.Fprintln(w, "| key | type | default | description |")
		fmt.Fprintln(w, "| --- | --- | --- | --- |")
	}
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, _ := props[k].(map[string]any)
		name := prefix + k
		fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", name, typeOf(p), defaultOf(p), cell(p["description"]))
		if sub, ok := p["properties"].(map[string]any); ok && k != "matrix" {
			keyTable(w, name+".", sub)
		}
	}
}

func typeOf(p map[string]any) string {
	var t string
	switch x := p["type"].(type) {
	case string:
		t = x
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, fmt.Sprint(e))
		}
		t = strings.Join(parts, " or ")
	}
	if e, ok := p["enum"].([]any); ok {
		var parts []string
		for _, v := range e {
			parts = append(parts, fmt.Sprint(v))
		}
		t = strings.Join(parts, " \\| ")
	}
	if t == "array" {
		if items, ok := p["items"].(map[string]any); ok {
			t = "list of " + typeOf(items)
		}
	}
	var bounds []string
	for _, b := range []struct{ key, op string }{{"minimum", ">="}, {"exclusiveMinimum", ">"}, {"maximum", "<="}, {"exclusiveMaximum", "<"}} {
		if v, ok := p[b.key]; ok {
			bounds = append(bounds, fmt.Sprintf("%s %v", b.op, v))
		}
	}
	if len(bounds) > 0 {
		t += " (" + strings.Join(bounds, ", ") + ")"
	}
	if t == "" {
		t = "any"
	}
	return t
}

func defaultOf(p map[string]any) string {
	d, ok := p["default"]
	if !ok {
		return ""
	}
	b, _ := json.Marshal(d)
	return "`" + string(b) + "`"
}

func cell(v any) string {
	s, _ := v.(string)
	return strings.ReplaceAll(s, "|", "\\|")
}
