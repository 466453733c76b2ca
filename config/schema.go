package config

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// Schemer is implemented by config types whose JSON Schema the struct walk cannot
// derive (a value that is an integer or a float with different meanings, say).
type Schemer interface {
	ConfigSchema() map[string]any
}

var schemerType = reflect.TypeFor[Schemer]()

// Schema derives the JSON Schema (2020-12) of a config struct from its tags. defaults
// points to the struct holding the default values (the one a constructor returns):
// they become each property's "default", so the schema, the decoder and the docs
// share one source.
func Schema(defaults any) map[string]any {
	v := reflect.ValueOf(defaults)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	return structSchema(v.Type(), v)
}

func structSchema(t reflect.Type, def reflect.Value) map[string]any {
	props := map[string]any{}
	for _, f := range fieldsOf(t) {
		var fv reflect.Value
		if def.IsValid() {
			fv = def.FieldByIndex(f.index)
		}
		props[f.key] = fieldSchema(t.FieldByIndex(f.index).Type, f, fv)
	}
	return map[string]any{"type": "object", "additionalProperties": false, "properties": props}
}

func fieldSchema(t reflect.Type, f field, def reflect.Value) map[string]any {
	s := typeSchema(t, f)
	if f.doc != "" {
		s["description"] = f.doc
	}
	if d, ok := defaultValue(def, f); ok {
		s["default"] = d
	}
	return s
}

// defaultValue is the JSON form of a field's default, when it has a meaningful one.
func defaultValue(v reflect.Value, f field) (any, bool) {
	if !v.IsValid() || (f.omitEmpty && v.IsZero()) {
		return nil, false
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		if v.IsNil() {
			return nil, false
		}
	}
	b, err := json.Marshal(v.Interface())
	if err != nil {
		panic(fmt.Sprintf("config: default of %s: %v", f.key, err))
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out, true
}

func typeSchema(t reflect.Type, f field) map[string]any {
	if t.Implements(schemerType) {
		return reflect.Zero(t).Interface().(Schemer).ConfigSchema()
	}
	if reflect.PointerTo(t).Implements(schemerType) {
		return reflect.New(t).Interface().(Schemer).ConfigSchema()
	}
	s := map[string]any{}
	switch t.Kind() {
	case reflect.Pointer:
		return typeSchema(t.Elem(), f)
	case reflect.String:
		s["type"] = "string"
		if len(f.enum) > 0 {
			s["enum"] = f.enum
		}
	case reflect.Bool:
		s["type"] = "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		s["type"] = "integer"
		addBounds(s, f.bounds)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s["type"] = "integer"
		s["minimum"] = 0
		addBounds(s, f.bounds)
	case reflect.Float32, reflect.Float64:
		s["type"] = "number"
		addBounds(s, f.bounds)
	case reflect.Slice:
		s["type"] = "array"
		item := f
		item.bounds.minItems, item.bounds.maxItems = nil, nil
		s["items"] = typeSchema(t.Elem(), item)
		if f.bounds.minItems != nil {
			s["minItems"] = *f.bounds.minItems
		}
		if f.bounds.maxItems != nil {
			s["maxItems"] = *f.bounds.maxItems
		}
	case reflect.Map:
		s["type"] = "object"
		s["additionalProperties"] = typeSchema(t.Elem(), field{})
	case reflect.Struct:
		return structSchema(t, reflect.Value{})
	case reflect.Interface:
		// any value
	default:
		panic(fmt.Sprintf("config: no schema for %s", t))
	}
	return s
}

func addBounds(s map[string]any, b bounds) {
	if b.min != nil {
		s["minimum"] = *b.min
	}
	if b.max != nil {
		s["maximum"] = *b.max
	}
	if b.exclMin != nil {
		s["exclusiveMinimum"] = *b.exclMin
	}
	if b.exclMax != nil {
		s["exclusiveMaximum"] = *b.exclMax
	}
}
