package checkpoint

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// metadataKey is the reserved header key holding the string->string metadata.
const metadataKey = "__metadata__"

// File is a whole safetensors checkpoint. Read returns the tensors sorted by name and a
// non-nil Metadata map; Encode accepts the tensors in any order.
type File struct {
	Metadata map[string]string
	Tensors  []Tensor
}

// Get returns the tensor with the given name.
func (f *File) Get(name string) (*Tensor, bool) {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i], true
		}
	}
	return nil, false
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string {
	names := make([]string, len(f.Tensors))
	for i := range f.Tensors {
		names[i] = f.Tensors[i].Name
	}
	slices.Sort(names)
	return names
}

// Set replaces the tensor named t.Name, or appends t if there is none.
func (f *File) Set(t Tensor) {
	if old, ok := f.Get(t.Name); ok {
		*old = t
		return
	}
	f.Tensors = append(f.Tensors, t)
}

// Validate checks what Encode checks: every tensor valid (see Tensor.Validate), names
// unique, metadata keys and values valid UTF-8.
func (f *File) Validate() error {
	var errs []error
	seen := make(map[string]struct{}, len(f.Tensors))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if err := t.Validate(); err != nil {
			errs = append(errs, err)
		}
		if _, dup := seen[t.Name]; dup {
			errs = append(errs, fmt.Errorf("checkpoint: duplicate tensor name %q", t.Name))
		}
		seen[t.Name] = struct{}{}
	}
	var bad []string
	for k, v := range f.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			bad = append(bad, k)
		}
	}
	slices.Sort(bad) // map order is random; keep the message deterministic
	for _, k := range bad {
		errs = append(errs, fmt.Errorf("checkpoint: metadata %q: key or value is not valid UTF-8", k))
	}
	return errors.Join(errs...)
}
