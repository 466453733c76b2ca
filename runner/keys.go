package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// KeyDoc is everything a stage's result depends on. Its canonical JSON hashes to
// the stage key: the same ingredients give the same key on any machine.
type KeyDoc struct {
	Format string          `json:"format"` // the checkpoint format
	Stage  string          `json:"stage"`  // the id: it seeds the stage's randomness
	Type   string          `json:"type"`
	Config json.RawMessage `json:"config"` // decoded, defaults filled in
	// Inputs are the sha256 of every input checkpoint by role: "needs" (one per
	// input, in order) and reference keys ("teacher").
	Inputs map[string][]string `json:"inputs,omitempty"`
	// Model is the recipe's model section (and its checkpoint's digest) for stages
	// that start from it.
	Model json.RawMessage `json:"model,omitempty"`
	Data  string          `json:"data,omitempty"` // the data fingerprint
	// Batching is how the rows are served: batch sizes and shuffling change
	// training, calibration and (for dynamic quantization) evaluation.
	Batching json.RawMessage `json:"batching,omitempty"`
	Seed     uint64          `json:"seed"`
}

// Key hashes the canonical JSON of the document.
func (d KeyDoc) Key() string {
	b, err := json.Marshal(d) // struct fields in order, map keys sorted: canonical
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Diff lists what differs between an earlier key document and this one, as a
// user would say it: "config.amount 0.5 -> 0.7", "input train changed".
func (d KeyDoc) Diff(old KeyDoc) []string {
	var out []string
	if d.Type != old.Type {
		out = append(out, fmt.Sprintf("type %s -> %s", old.Type, d.Type))
	}
	if d.Format != old.Format {
		out = append(out, "checkpoint format changed")
	}
	out = append(out, jsonDiff("config", old.Config, d.Config)...)
	if !reflect.DeepEqual(d.Inputs, old.Inputs) {
		out = append(out, "an input model changed")
	}
	out = append(out, jsonDiff("model", old.Model, d.Model)...)
	if d.Data != old.Data {
		out = append(out, "the data changed")
	}
	out = append(out, jsonDiff("data", old.Batching, d.Batching)...)
	if d.Seed != old.Seed {
		out = append(out, fmt.Sprintf("seed %d -> %d", old.Seed, d.Seed))
	}
	return out
}

// jsonDiff compares two JSON objects key by key (one level deep, then whole values).
func jsonDiff(prefix string, a, b json.RawMessage) []string {
	if string(a) == string(b) {
		return nil
	}
	var ma, mb map[string]any
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return []string{prefix + " changed"}
	}
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []string
	for _, k := range names {
		va, vb := compact(ma[k]), compact(mb[k])
		if va != vb {
			out = append(out, fmt.Sprintf("%s.%s %s -> %s", prefix, k, va, vb))
		}
	}
	return out
}

func compact(v any) string {
	if v == nil {
		return "(unset)"
	}
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return strings.Trim(s, `"`)
}
