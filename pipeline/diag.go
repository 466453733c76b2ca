package pipeline

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is where a recipe value came from: a place in the recipe file, or an override
// (a --set flag or a SHRINK_ environment variable) named by Origin.
type Pos struct {
	File      string
	Line, Col int
	Origin    string // "--set stages.prune.amount=2" or "env SHRINK_SEED"; empty for the file
}

func (p Pos) String() string {
	switch {
	case p.Origin != "":
		return p.Origin
	case p.Line > 0:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
	return p.File
}

// Diagnostic is one problem found in a recipe, printed as `FILE:LINE:COL: message`.
type Diagnostic struct {
	Pos Pos
	Msg string
}

func (d Diagnostic) String() string { return d.Pos.String() + ": " + d.Msg }

// Diagnostics is every problem found in a recipe, sorted by position. It is an error.
type Diagnostics []Diagnostic

func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Sort orders diagnostics by file position (file problems first, then overrides by
// name), then message, and drops exact duplicates.
func (ds Diagnostics) Sort() Diagnostics {
	slices.SortFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Origin, b.Pos.Origin),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Msg, b.Msg))
	})
	return slices.Compact(ds)
}
