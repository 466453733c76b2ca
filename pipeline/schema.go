package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
)

// SchemaID is the published address of the recipe schema.
const SchemaID = "https://github.com/shrink-ml/shrink/schemas/recipe.schema.json"

// idPattern is the shape of stage ids and recipe names.
const (
	idPattern   = "^[a-z0-9_-]+$"
	namePattern = "^[a-z0-9][a-z0-9._-]*$"
	// QuantityPattern is a Kubernetes resource quantity: 2, 0.5, 500m, 4Gi.
	QuantityPattern = `^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$`
)

// genericKeys are the keys every stage accepts, whatever its type.
var genericKeys = []string{"type", "needs", "matrix", "resources", "data"}

// GenerateSchema builds the recipe JSON Schema (2020-12) from a registry: the
// top-level keys, the model and data sections, and every stage type's keys with
// their descriptions and defaults. schemas/recipe.schema.json is this for the
// built-in registry; a test keeps the two equal.
func GenerateSchema(reg Registry) map[string]any {
	var names []string
	var cases []any
	defs := map[string]any{}
	for _, t := range reg.Types() {
		names = append(names, t.Name)
		cfg := config.Schema(t.New())
		props := cfg["properties"].(map[string]any)
		matrix := map[string]any{}
		for k, p := range props {
			matrix[k] = map[string]any{"type": "array", "minItems": 1, "items": p}
		}
		for k, p := range genericStageProps() {
			props[k] = p
		}
		m := props["matrix"].(map[string]any)
		m["properties"] = matrix
		m["additionalProperties"] = false
		def := "stage-" + t.Name
		defs[def] = map[string]any{
			"description":          t.Summary,
			"type":                 "object",
			"properties":           props,
			"additionalProperties": false,
		}
		cases = append(cases, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"type": map[string]any{"const": t.Name}}, "required": []any{"type"}},
			"then": map[string]any{"$ref": "#/$defs/" + def},
		})
	}
	stage := map[string]any{
		"type":     "object",
		"required": []any{"type"},
		"properties": map[string]any{
			"type": map[string]any{"enum": names, "description": "the stage type"},
		},
		"allOf": cases,
	}
	defs[stageDataDef] = stageDataSchema()
	model := config.Schema(arch.Default())
	return map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"$id":                  SchemaID,
		"title":                "shrink recipe (format v1)",
		"description":          "A DAG of model-compression stages. See docs/RECIPES.md.",
		"type":                 "object",
		"required":             []any{"version", "name", "model", "stages"},
		"additionalProperties": false,
		"properties": map[string]any{
			"version": map[string]any{"const": 1, "description": "the recipe format version"},
			"name":    map[string]any{"type": "string", "pattern": namePattern, "description": "the recipe's name; the run folder defaults to runs/<name>"},
			"seed":    map[string]any{"type": "integer", "minimum": 0, "default": 0, "description": "the only source of randomness"},
			"model":   model,
			"data":    config.Schema(data.DefaultConfig()),
			"stages": map[string]any{
				"type":                 "object",
				"description":          "stage id -> stage; ids are [a-z0-9_-]+",
				"minProperties":        1,
				"propertyNames":        map[string]any{"pattern": idPattern},
				"additionalProperties": stage,
			},
		},
		"$defs": defs,
	}
}

func genericStageProps() map[string]any {
	return map[string]any{
		"type": map[string]any{"type": "string", "description": "the stage type"},
		"needs": map[string]any{
			"type": "array", "items": map[string]any{"type": "string", "pattern": idPattern},
			"description": "the stage whose output model this stage transforms (select: the stages to choose among); none: start from the recipe's model",
		},
		"matrix": map[string]any{
			"type":          "object",
			"minProperties": 1,
			"description":   "key -> list of values: one stage per combination, ids like prune[amount=0.5]; stages that need it fan out with it",
		},
		"data": map[string]any{"$ref": "#/$defs/" + stageDataDef, "description": stageDataDoc},
		"resources": map[string]any{
			"type":                 "object",
			"additionalProperties": false,
			"description":          "requests for distributed runs (Argo)",
			"properties": map[string]any{
				"cpu":    map[string]any{"type": []any{"string", "number"}, "pattern": QuantityPattern, "description": "CPU request, e.g. 2 or 500m"},
				"memory": map[string]any{"type": "string", "pattern": QuantityPattern, "description": "memory request, e.g. 2Gi"},
			},
		},
	}
}

// stageDataSchema is a stage's data key: the data section's keys without
// their defaults, since a key left out keeps the recipe's value.
func stageDataSchema() map[string]any {
	s := config.Schema(data.DefaultConfig())
	props := map[string]any{}
	for k, v := range s["properties"].(map[string]any) {
		p := maps.Clone(v.(map[string]any))
		delete(p, "default")
		props[k] = p
	}
	s["properties"] = props
	s["description"] = stageDataDoc
	return s
}

// stageDataDef names the stage data key's schema in $defs.
const stageDataDef = "stage-data-override"

const stageDataDoc = "this stage's own data: keys merged over the recipe's data section (the others keep its values), " +
	"used for the stage's training and for its accuracy; part of the stage key. See docs/RECIPES.md"

// compiled caches compiled schemas by their JSON text: registries need not be
// comparable, and the same types give the same schema.
var compiled sync.Map // string -> *compiledSchema

type compiledSchema struct {
	doc    map[string]any
	schema *jsonschema.Schema
}

func schemaFor(reg Registry) *compiledSchema {
	b, err := json.Marshal(GenerateSchema(reg))
	if err != nil {
		panic(err)
	}
	if c, ok := compiled.Load(string(b)); ok {
		return c.(*compiledSchema)
	}
	// Round-trip through JSON so the compiler sees plain JSON values.
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		panic(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		panic(err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		panic(fmt.Sprintf("recipe schema does not compile: %v", err))
	}
	cs := &compiledSchema{doc: doc.(map[string]any), schema: s}
	compiled.Store(string(b), cs)
	return cs
}

// validateSchema checks the tree against the schema and turns each failure into a
// diagnostic at its YAML position. It also returns the sections and stages that
// failed ("model", "stages.prune"), so later checks skip them and each problem is
// reported once.
func validateSchema(reg Registry, tree map[string]any, pos *positions) (Diagnostics, map[string]bool) {
	bad := map[string]bool{}
	cs := schemaFor(reg)
	err := cs.schema.Validate(finite(tree))
	if err == nil {
		return nil, bad
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return Diagnostics{{Pos{File: pos.file}, err.Error()}}, bad
	}
	var ds Diagnostics
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		switch e.ErrorKind.(type) {
		case *kind.AnyOf, *kind.OneOf:
			// One problem, however many alternatives the schema lists.
			ds = append(ds, cs.alternatives(e, tree, pos)...)
			markBad(bad, e.InstanceLocation)
			return
		}
		if pn, ok := e.ErrorKind.(*kind.PropertyNames); ok {
			// jsonschema v6.0.3 hands propertyNames errors a location slice it
			// goes on mutating, so read the mapping's path from the schema pointer
			// (…#/properties/stages/propertyNames) instead.
			loc := locationFromSchema(e.SchemaURL)
			path := joinPath(strings.Join(loc, "."), pn.Property)
			msg := fmt.Sprintf("%q is not a valid name here", pn.Property)
			if len(loc) == 1 && loc[0] == "stages" {
				msg = fmt.Sprintf("stage id %q: use lowercase letters, digits, '_' and '-' only", pn.Property)
				bad[path] = true
			}
			ds = append(ds, Diagnostic{pos.ofKey(path), msg})
			return
		}
		if len(e.Causes) == 0 {
			ds = append(ds, cs.describe(e, tree, pos)...)
			markBad(bad, e.InstanceLocation)
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return ds, bad
}

// markBad records the section or stage a failure belongs to.
func markBad(bad map[string]bool, loc []string) {
	switch {
	case len(loc) >= 2 && loc[0] == "stages":
		bad["stages."+loc[1]] = true
	case len(loc) >= 1:
		bad[loc[0]] = true
	}
}

// alternatives describes a value that matches none of a schema's alternatives as
// one diagnostic listing what each alternative wanted.
func (cs *compiledSchema) alternatives(e *jsonschema.ValidationError, tree map[string]any, pos *positions) Diagnostics {
	path := strings.Join(e.InstanceLocation, ".")
	var wants []string
	var leaves func(e *jsonschema.ValidationError)
	leaves = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			for _, d := range cs.describe(e, tree, pos) {
				msg := strings.TrimPrefix(d.Msg, label(strings.Join(e.InstanceLocation, ".")))
				if !slices.Contains(wants, msg) {
					wants = append(wants, msg)
				}
			}
			return
		}
		for _, c := range e.Causes {
			leaves(c)
		}
	}
	leaves(e)
	return Diagnostics{{pos.ofValue(path), label(path) + "matches none of the allowed forms: " + strings.Join(wants, "; or ")}}
}

// finite replaces infinities (YAML's .inf), which JSON cannot hold, with the
// largest float so range checks still see them as huge; NaN becomes a string so
// every number check rejects it.
func finite(v any) any {
	switch x := v.(type) {
	case float64:
		switch {
		case math.IsInf(x, 1):
			return math.MaxFloat64
		case math.IsInf(x, -1):
			return -math.MaxFloat64
		case math.IsNaN(x):
			return ".nan"
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = finite(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = finite(e)
		}
		return out
	}
	return v
}

func (cs *compiledSchema) describe(e *jsonschema.ValidationError, tree map[string]any, pos *positions) Diagnostics {
	path := strings.Join(e.InstanceLocation, ".")
	at := func(msg string, args ...any) Diagnostics {
		return Diagnostics{{pos.ofValue(path), label(path) + fmt.Sprintf(msg, args...)}}
	}
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		allowed := cs.allowedKeys(e.SchemaURL)
		var ds Diagnostics
		for _, p := range k.Properties {
			child := joinPath(path, p)
			ds = append(ds, Diagnostic{pos.ofKey(child), fmt.Sprintf("%s: unknown key%s", child, hint(p, allowed))})
		}
		return ds
	case *kind.Required:
		var ds Diagnostics
		for _, m := range k.Missing {
			ds = append(ds, Diagnostic{pos.ofKey(path), label(path) + fmt.Sprintf("missing required key %q", m)})
		}
		return ds
	case *kind.Type:
		return at("must be %s, got %s", orList(k.Want), config.Describe(lookup(tree, e.InstanceLocation)))
	case *kind.Enum:
		var want []string
		for _, w := range k.Want {
			want = append(want, fmt.Sprint(w))
		}
		got := fmt.Sprint(k.Got)
		if len(e.InstanceLocation) == 3 && e.InstanceLocation[0] == "stages" && e.InstanceLocation[2] == "type" {
			return at("unknown stage type %q%s; the types are %s", got, config.DidYouMean(got, want), strings.Join(want, ", "))
		}
		return at("%q is not one of %s%s", got, strings.Join(want, ", "), config.DidYouMean(got, want))
	case *kind.Const:
		return at("must be %v, got %s", k.Want, config.Describe(k.Got))
	case *kind.Minimum:
		return at("%s is below the minimum %s", rat(k.Got), rat(k.Want))
	case *kind.Maximum:
		return at("%s is above the maximum %s", rat(k.Got), rat(k.Want))
	case *kind.ExclusiveMinimum:
		return at("%s must be greater than %s", rat(k.Got), rat(k.Want))
	case *kind.ExclusiveMaximum:
		return at("%s must be less than %s", rat(k.Got), rat(k.Want))
	case *kind.MinItems:
		return at("needs at least %d item(s), got %d", k.Want, k.Got)
	case *kind.MaxItems:
		return at("takes at most %d item(s), got %d", k.Want, k.Got)
	case *kind.MinProperties:
		if path == "stages" {
			return at("a recipe needs at least one stage")
		}
		return at("needs at least %d key(s)", k.Want)
	case *kind.Pattern:
		if k.Want == idPattern {
			return at("%q is not a stage id: ids use lowercase letters, digits, '_' and '-'", k.Got)
		}
		if path == "name" {
			return at("%q: start with a lowercase letter or digit, then use lowercase letters, digits, '.', '_' and '-'", k.Got)
		}
		if k.Want == QuantityPattern {
			return at("%q is not a Kubernetes quantity: write a number with an optional unit, e.g. 2, 500m, 4Gi", k.Got)
		}
		return at("%q does not match %s", k.Got, k.Want)
	case *kind.FalseSchema:
		return at("is not allowed here")
	}
	return at("%s", e.Error())
}

// locationFromSchema turns a schema pointer made of nested "properties" into the
// instance path it validates.
func locationFromSchema(schemaURL string) []string {
	_, frag, _ := strings.Cut(schemaURL, "#")
	toks := strings.Split(strings.TrimPrefix(frag, "/"), "/")
	var loc []string
	for i := 0; i+1 < len(toks); i++ {
		if toks[i] == "properties" {
			loc = append(loc, toks[i+1])
			i++
		}
	}
	return loc
}

// allowedKeys reads the properties of the schema object a failing keyword belongs to.
func (cs *compiledSchema) allowedKeys(schemaURL string) []string {
	_, frag, _ := strings.Cut(schemaURL, "#")
	var node any = cs.doc
	for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch n := node.(type) {
		case map[string]any:
			node = n[tok]
		case []any: // allOf, oneOf: the layer types' if/then cases
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n) {
				return nil
			}
			node = n[i]
		default:
			return nil
		}
	}
	// The URL points at the additionalProperties keyword or at its schema object.
	obj, _ := node.(map[string]any)
	if _, isKeyword := obj["properties"]; !isKeyword {
		return nil
	}
	props, _ := obj["properties"].(map[string]any)
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func hint(key string, allowed []string) string {
	if s := config.DidYouMean(key, allowed); s != "" {
		return s
	}
	if len(allowed) > 0 && len(allowed) <= 16 {
		return "; allowed here: " + strings.Join(allowed, ", ")
	}
	return ""
}

func label(path string) string {
	if path == "" {
		return "recipe: "
	}
	return path + ": "
}

func orList(want []string) string {
	words := make([]string, len(want))
	for i, w := range want {
		switch w {
		case "object":
			w = "a mapping"
		case "array":
			w = "a list"
		case "integer":
			w = "an integer"
		case "number":
			w = "a number"
		case "string":
			w = "a string"
		case "boolean":
			w = "true or false"
		}
		words[i] = w
	}
	return strings.Join(words, " or ")
}

func rat(r *big.Rat) string {
	f, _ := r.Float64()
	return config.FormatNumber(f)
}

func lookup(tree any, loc []string) any {
	v := tree
	for _, tok := range loc {
		switch n := v.(type) {
		case map[string]any:
			v = n[tok]
		case []any:
			var i int
			fmt.Sscan(tok, &i)
			if i < 0 || i >= len(n) {
				return nil
			}
			v = n[i]
		default:
			return nil
		}
	}
	return v
}
