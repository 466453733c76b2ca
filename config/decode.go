package config

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Decoder is implemented by config types that decode themselves from a raw recipe
// value (a YAML-decoded tree of map[string]any, []any, string, bool, int and float64).
// Returning a *FieldError or Errors keeps sub-paths; any other error is reported
// at the key itself.
type Decoder interface {
	DecodeConfig(raw any) error
}

// Validator is implemented by configs with rules across fields. It runs after
// decoding and reports with FieldErrors naming the keys.
type Validator interface {
	Validate() error
}

// Decode copies raw into the struct dst points to. Keys that raw does not mention
// keep the values dst already holds, so a dst fresh from a constructor supplies the
// defaults. Decoding is strict: unknown keys, wrong types, values outside an enum or
// a range are errors, all reported, none fatal. A Validator dst is validated after.
func Decode(raw map[string]any, dst any) Errors {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("config.Decode: dst must point to a struct, got %T", dst))
	}
	errs := decodeStruct("", raw, v.Elem())
	if len(errs) == 0 {
		if val, ok := dst.(Validator); ok {
			errs = append(errs, AsErrors(val.Validate())...)
		}
	}
	return errs
}

// field is what the tags say about one struct field.
type field struct {
	key       string
	index     []int // for reflect.Value.FieldByIndex: embedded structs' fields inline
	doc       string
	enum      []string
	omitEmpty bool
	bounds    bounds
}

type bounds struct {
	min, max           *float64
	exclMin, exclMax   *float64
	minItems, maxItems *int
}

var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf lists the decodable fields of a struct type: exported, with a json tag
// other than "-".
func fieldsOf(t reflect.Type) []field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	var fields []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("json")
		if sf.Anonymous && !ok && sf.Type.Kind() == reflect.Struct {
			for _, f := range fieldsOf(sf.Type) {
				f.index = append([]int{i}, f.index...)
				fields = append(fields, f)
			}
			continue
		}
		if !ok || tag == "-" || !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		f := field{key: name, index: []int{i}, doc: sf.Tag.Get("doc"), omitEmpty: strings.Contains(opts, "omitempty")}
		if e := sf.Tag.Get("enum"); e != "" {
			f.enum = strings.Split(e, ",")
		}
		f.bounds = bounds{
			min:      floatTag(sf, "minimum"),
			max:      floatTag(sf, "maximum"),
			exclMin:  floatTag(sf, "exclusiveMinimum"),
			exclMax:  floatTag(sf, "exclusiveMaximum"),
			minItems: intTag(sf, "minItems"),
			maxItems: intTag(sf, "maxItems"),
		}
		fields = append(fields, f)
	}
	fieldCache.Store(t, fields)
	return fields
}

func floatTag(sf reflect.StructField, name string) *float64 {
	s, ok := sf.Tag.Lookup(name)
	if !ok {
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(fmt.Sprintf("config: field %s: bad %s tag %q", sf.Name, name, s))
	}
	return &v
}

func intTag(sf reflect.StructField, name string) *int {
	f := floatTag(sf, name)
	if f == nil {
		return nil
	}
	v := int(*f)
	return &v
}

func decodeStruct(path string, raw map[string]any, v reflect.Value) Errors {
	fields := fieldsOf(v.Type())
	byKey := make(map[string]*field, len(fields))
	keys := make([]string, 0, len(fields))
	for i := range fields {
		byKey[fields[i].key] = &fields[i]
		keys = append(keys, fields[i].key)
	}
	var errs Errors
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		f, ok := byKey[k]
		if !ok {
			errs = append(errs, Errorf(Join(path, k), "unknown key%s", DidYouMean(k, keys)))
			continue
		}
		p := Join(path, k)
		fv := v.FieldByIndex(f.index)
		es := decodeValue(p, raw[k], fv)
		if len(es) == 0 {
			es = checkField(p, f, fv)
		}
		errs = append(errs, es...)
	}
	return errs
}

var decoderType = reflect.TypeFor[Decoder]()

func decodeValue(path string, raw any, v reflect.Value) Errors {
	if v.CanAddr() && v.Addr().Type().Implements(decoderType) {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return AsErrors(v.Addr().Interface().(Decoder).DecodeConfig(raw)).Prefix(path)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if raw == nil {
			v.SetZero()
			return nil
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeValue(path, raw, v.Elem())
	case reflect.Interface:
		if raw != nil {
			v.Set(reflect.ValueOf(raw))
		} else {
			v.SetZero()
		}
		return nil
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			return Errors{typeError(path, "a string", raw)}
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			return Errors{typeError(path, "true or false", raw)}
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := AsInt(raw)
		if !ok {
			if bigWhole(raw) {
				return Errors{Errorf(path, "%s is out of range for an integer", Describe(raw))}
			}
			return Errors{typeError(path, "an integer", raw)}
		}
		if v.OverflowInt(n) {
			return Errors{Errorf(path, "%d is out of range", n)}
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := AsInt(raw)
		if !ok && bigWhole(raw) {
			return Errors{Errorf(path, "%s is out of range for an integer", Describe(raw))}
		}
		if !ok || n < 0 {
			return Errors{typeError(path, "a non-negative integer", raw)}
		}
		v.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		f, ok := AsFloat(raw)
		if !ok {
			return Errors{typeError(path, "a number", raw)}
		}
		v.SetFloat(f)
	case reflect.Slice:
		items, ok := raw.([]any)
		if !ok {
			return Errors{typeError(path, "a list", raw)}
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		var errs Errors
		for i, item := range items {
			errs = append(errs, decodeValue(Join(path, strconv.Itoa(i)), item, s.Index(i))...)
		}
		v.Set(s)
		return errs
	case reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			return Errors{typeError(path, "a mapping", raw)}
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		var errs Errors
		for _, k := range slices.Sorted(maps.Keys(m)) {
			elem := reflect.New(v.Type().Elem()).Elem()
			if old := v.MapIndex(reflect.ValueOf(k)); old.IsValid() {
				elem.Set(old)
			}
			es := decodeValue(Join(path, k), m[k], elem)
			errs = append(errs, es...)
			if len(es) == 0 {
				v.SetMapIndex(reflect.ValueOf(k), elem)
			}
		}
		return errs
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			return Errors{typeError(path, "a mapping", raw)}
		}
		errs := decodeStruct(path, m, v)
		if len(errs) == 0 && v.CanAddr() {
			if val, ok := v.Addr().Interface().(Validator); ok {
				errs = AsErrors(val.Validate()).Prefix(path)
			}
		}
		return errs
	default:
		panic(fmt.Sprintf("config: cannot decode into %s at %s", v.Type(), path))
	}
	return nil
}

// checkField applies a field's enum and bounds tags to its decoded value (to each
// item when the field is a list).
func checkField(path string, f *field, v reflect.Value) Errors {
	if v.Kind() == reflect.Slice {
		n := v.Len()
		if f.bounds.minItems != nil && n < *f.bounds.minItems {
			return Errors{Errorf(path, "needs at least %d item(s), got %d", *f.bounds.minItems, n)}
		}
		if f.bounds.maxItems != nil && n > *f.bounds.maxItems {
			return Errors{Errorf(path, "takes at most %d item(s), got %d", *f.bounds.maxItems, n)}
		}
		var errs Errors
		for i := 0; i < n; i++ {
			errs = append(errs, checkScalar(Join(path, strconv.Itoa(i)), f, v.Index(i))...)
		}
		return errs
	}
	return checkScalar(path, f, v)
}

func checkScalar(path string, f *field, v reflect.Value) Errors {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if len(f.enum) > 0 && v.Kind() == reflect.String {
		s := v.String()
		for _, e := range f.enum {
			if s == e {
				return nil
			}
		}
		return Errors{Errorf(path, "%q is not one of %s%s", s, strings.Join(f.enum, ", "), DidYouMean(s, f.enum))}
	}
	var x float64
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x = float64(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		x = float64(v.Uint())
	case reflect.Float32, reflect.Float64:
		x = v.Float()
	default:
		return nil
	}
	return checkBounds(path, x, f.bounds)
}

func checkBounds(path string, x float64, b bounds) Errors {
	switch {
	case b.min != nil && x < *b.min:
		return Errors{Errorf(path, "%s is below the minimum %s", FormatNumber(x), FormatNumber(*b.min))}
	case b.max != nil && x > *b.max:
		return Errors{Errorf(path, "%s is above the maximum %s", FormatNumber(x), FormatNumber(*b.max))}
	case b.exclMin != nil && x <= *b.exclMin:
		return Errors{Errorf(path, "%s must be greater than %s", FormatNumber(x), FormatNumber(*b.exclMin))}
	case b.exclMax != nil && x >= *b.exclMax:
		return Errors{Errorf(path, "%s must be less than %s", FormatNumber(x), FormatNumber(*b.exclMax))}
	}
	return nil
}

func typeError(path, want string, got any) *FieldError {
	return Errorf(path, "must be %s, got %s", want, Describe(got))
}

// Describe names a raw value's kind and shows it, for error messages.
func Describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing (null)"
	case string:
		return fmt.Sprintf("the string %q", x)
	case bool:
		return fmt.Sprintf("the boolean %t", x)
	case int, int64, uint64:
		return fmt.Sprintf("the integer %v", x)
	case float64:
		return "the number " + FormatNumber(x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// FormatNumber prints a float the short way YAML users write it.
func FormatNumber(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return ".inf"
	case math.IsInf(x, -1):
		return "-.inf"
	case x == math.Trunc(x) && math.Abs(x) < 1e15:
		// Whole numbers as written (epochs: 6000000002), not 6.000000002e+09.
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// AsInt converts a raw integer, or a float with an integral value, to int64.
func AsInt(raw any) (int64, bool) {
	switch x := raw.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	}
	return 0, false
}

// bigWhole says raw is a whole number too large for AsInt (1e30): out of
// range, rather than of the wrong type.
func bigWhole(raw any) bool {
	x, ok := raw.(float64)
	return ok && x == math.Trunc(x) && !math.IsInf(x, 0)
}

// AsFloat converts a raw number to float64.
func AsFloat(raw any) (float64, bool) {
	switch x := raw.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
