package arch

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/shrink-ml/shrink/config"
)

// Layer selection: every stage key that names layers (layers, amounts,
// overrides, ranks, energies) takes exact names, glob patterns in path.Match
// syntax (`layer*.conv*`: `*` matches any run of characters, dots included)
// and regular expressions after `re:` (`re:^layer[23]\..*conv2$`, Go syntax,
// unanchored unless the expression anchors itself).

// regexPrefix marks a regular expression.
const regexPrefix = "re:"

// IsPattern reports whether a layer selector is a glob or a regular expression
// rather than a name.
func IsPattern(sel string) bool {
	return strings.HasPrefix(sel, regexPrefix) || strings.ContainsAny(sel, "*?[")
}

// Matcher compiles a selector.
func Matcher(sel string) (func(name string) bool, error) {
	if re, ok := strings.CutPrefix(sel, regexPrefix); ok {
		r, err := regexp.Compile(re)
		if err != nil {
			return nil, fmt.Errorf("bad regular expression %q: %v", re, err)
		}
		return r.MatchString, nil
	}
	if IsPattern(sel) {
		if _, err := path.Match(sel, ""); err != nil {
			return nil, fmt.Errorf("bad glob pattern %q: %v", sel, err)
		}
		return func(name string) bool { ok, _ := path.Match(sel, name); return ok }, nil
	}
	return func(name string) bool { return name == sel }, nil
}

// Resolve returns, for each selector, the candidates it matches (in candidate
// order), and an error for each selector that is malformed or matches none.
// what says what the candidates are ("layers with weights"), for messages.
func Resolve(selectors, candidates []string, what string) ([][]string, []error) {
	out := make([][]string, len(selectors))
	errs := make([]error, len(selectors))
	for i, sel := range selectors {
		match, err := Matcher(sel)
		if err != nil {
			errs[i] = err
			continue
		}
		for _, c := range candidates {
			if match(c) {
				out[i] = append(out[i], c)
			}
		}
		if len(out[i]) > 0 {
			continue
		}
		list := strings.Join(candidates, ", ")
		if len(candidates) > 12 {
			list = strings.Join(candidates[:12], ", ") + fmt.Sprintf(", ... (%d in all)", len(candidates))
		}
		if IsPattern(sel) {
			errs[i] = fmt.Errorf("%q matches none of the %s (%s)", sel, what, list)
		} else {
			errs[i] = fmt.Errorf("layer %q is not in the model (its layers: %s)%s", sel, list, config.DidYouMean(sel, candidates))
		}
	}
	return out, errs
}

// Expand turns selectors into the distinct names they match, in candidate
// order; the first problem is returned.
func Expand(selectors, candidates []string, what string) ([]string, error) {
	matched, errs := Resolve(selectors, candidates, what)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	hit := map[string]bool{}
	for _, m := range matched {
		for _, n := range m {
			hit[n] = true
		}
	}
	var out []string
	for _, c := range candidates {
		if hit[c] {
			out = append(out, c)
		}
	}
	return out, nil
}
