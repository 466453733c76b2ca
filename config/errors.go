package config

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError is a problem with one key of a config section. Path is the key's dotted
// path relative to the section ("optimizer.lr", "layers.2"); the caller that knows
// the file adds the position.
type FieldError struct {
	Path string
	Msg  string
	Err  error // the underlying cause, if any (for errors.Is and As)
}

// Unwrap returns the underlying cause.
func (e *FieldError) Unwrap() error { return e.Err }

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errorf returns a FieldError for the key at path.
func Errorf(path, format string, args ...any) *FieldError {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Errors is a list of FieldErrors that is itself an error.
type Errors []*FieldError

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Err returns es as an error, or nil when it is empty.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Prefix returns the errors with prefix prepended to every path.
func (es Errors) Prefix(prefix string) Errors {
	out := make(Errors, len(es))
	for i, e := range es {
		out[i] = &FieldError{Path: Join(prefix, e.Path), Msg: e.Msg, Err: e.Err}
	}
	return out
}

// AsErrors flattens any error into FieldErrors: FieldError and Errors keep their
// paths; anything else becomes one error without a path.
func AsErrors(err error) Errors {
	if err == nil {
		return nil
	}
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return Errors{fe}
	}
	return Errors{{Msg: err.Error()}}
}

// Join joins two dotted key paths.
func Join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "." + b
}

// Ref is a reference from one stage's config to another stage, other than needs:
// a distillation teacher, say. Path is the key holding it ("teacher").
type Ref struct {
	Path  string
	Stage string
}

// Referrer is implemented by stage configs that reference other stages. The
// pipeline makes each reference an edge of the DAG and checks it exists.
type Referrer interface {
	References() []Ref
}
