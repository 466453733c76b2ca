package pipeline

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
)

// Stage is one stage of the expanded DAG: a recipe stage, or one combination of a
// matrix stage, or a stage fanned out with one.
type Stage struct {
	ID     string  // "prune", or "prune[amount=0.5]" for an expansion
	Base   string  // the recipe's stage id
	Type   string  // the registry type name
	Params []Param // the matrix values that made this expansion, upstream first
	// Needs are the input models: at most one, except for fan-in stages (select).
	// Empty means: start from the recipe's model.
	Needs  []string
	Refs   []config.Ref // other references, resolved to expanded ids
	Config any          // the decoded config, defaults filled in
	// Data is the stage's own data section: its data key merged over the
	// recipe's (nil: the recipe's; see Recipe.StageData).
	Data      *data.Config
	Resources Resources
	Pos       Pos // where the stage is defined

	assign   map[string]int // matrix stage -> combination index, for fan-out
	baseRefs []string       // Refs' recipe stage ids, for diagnostics
}

// Param is one matrix key and value of an expanded stage.
type Param struct {
	Key   string
	Value any
}

// Resources are a stage's requests for distributed runs.
type Resources struct {
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
}

// Deps lists every stage this one reads: its needs and its references.
func (s *Stage) Deps() []string {
	deps := slices.Clone(s.Needs)
	for _, r := range s.Refs {
		deps = append(deps, r.Stage)
	}
	return deps
}

// Ref returns the expanded id a config key refers to ("teacher"), or "".
func (s *Stage) Ref(path string) string {
	for _, r := range s.Refs {
		if r.Path == path {
			return r.Stage
		}
	}
	return ""
}

// baseStage is a recipe stage before expansion.
type baseStage struct {
	id     string
	index  int
	raw    map[string]any
	typ    StageType
	known  bool
	needs  []string
	combos []combo
	refs   []config.Ref // union over combinations, base ids
	data   *data.Config // the data key merged over the recipe's data section
	pos    Pos
}

// combo is one combination of a stage's matrix and its decoded config.
type combo struct {
	params []Param
	config any
	refs   []config.Ref
}

// buildStages decodes every stage, checks the references and the DAG, expands the
// matrices and orders the result.
func (r *Recipe) buildStages(reg Registry, tree map[string]any, bad map[string]bool) Diagnostics {
	rawStages, _ := tree["stages"].(map[string]any)
	ids := r.stageOrder(rawStages)
	r.baseOrder = ids
	var diags Diagnostics
	bases := map[string]*baseStage{}
	var order []*baseStage
	for i, id := range ids {
		raw, _ := rawStages[id].(map[string]any)
		b := &baseStage{id: id, index: i, raw: raw, pos: r.pos.ofKey("stages." + id)}
		bases[id] = b
		order = append(order, b)
		if raw == nil {
			continue
		}
		name, _ := raw["type"].(string)
		b.typ, b.known = reg.Lookup(name)
		if list, ok := raw["needs"].([]any); ok {
			for _, n := range list {
				if s, ok := n.(string); ok {
					b.needs = append(b.needs, s)
				}
			}
		}
		if b.known && !bad["stages."+id] {
			ds := r.decodeStage(b)
			diags = append(diags, ds...)
			diags = append(diags, r.decodeStageData(b, tree)...)
		}
	}
	diags = append(diags, r.checkRefs(order, bases)...)
	diags = append(diags, findCycles(order, bases, r.pos)...)
	if len(diags) > 0 || len(bad) > 0 {
		return diags
	}
	stages, tooMany := expand(order, bases, r.pos)
	if tooMany != nil {
		return Diagnostics{{tooMany.pos, fmt.Sprintf("stages.%s: the branches it follows and its own matrix make more than %d stages: sweep fewer values, or split the sweep into several recipes", tooMany.stage, MaxStages)}}
	}
	r.Stages = stages
	diags = append(diags, r.checkFanInRefs()...)
	_, hasData := tree["data"]
	for _, s := range r.Stages {
		if u, ok := s.Config.(DataUser); ok && u.UsesData() && !hasData && s.Data == nil {
			diags = append(diags, Diagnostic{s.Pos, fmt.Sprintf("stages.%s: a %s stage with these settings trains or evaluates: add a data section (for example data: {dataset: mnist})", s.Base, s.Type)})
		}
		if c, ok := s.Config.(DataChecker); ok && r.StageData(s) != nil {
			for _, e := range config.AsErrors(c.CheckData(r.StageData(s))) {
				path := "stages." + s.Base + "." + e.Path
				diags = append(diags, Diagnostic{r.pos.ofValue(path), label(path) + e.Msg})
			}
		}
	}
	return diags
}

// stageOrder lists stage ids in the order the recipe writes them; stages that only
// overrides created come last, by name.
func (r *Recipe) stageOrder(raw map[string]any) []string {
	ids := slices.Collect(maps.Keys(raw))
	slices.SortFunc(ids, func(a, b string) int {
		pa, oka := r.pos.key["stages."+a]
		pb, okb := r.pos.key["stages."+b]
		switch {
		case oka && okb:
			return cmp.Or(cmp.Compare(pa.Line, pb.Line), cmp.Compare(pa.Col, pb.Col))
		case oka:
			return -1
		case okb:
			return 1
		}
		return cmp.Compare(a, b)
	})
	return ids
}

// decodeStage decodes a stage's config once per matrix combination.
func (r *Recipe) decodeStage(b *baseStage) Diagnostics {
	base := map[string]any{}
	for k, v := range b.raw {
		if !slices.Contains(genericKeys, k) {
			base[k] = v
		}
	}
	matrix, _ := b.raw["matrix"].(map[string]any)
	if len(matrix) > 0 && b.typ.FanIn {
		return Diagnostics{{r.pos.ofKey("stages." + b.id + ".matrix"), fmt.Sprintf("stages.%s.matrix: a %s stage chooses among branches and cannot have a matrix itself", b.id, b.typ.Name)}}
	}
	keys := slices.Sorted(maps.Keys(matrix))
	if n, more := combinationCount(keys, matrix); more {
		return Diagnostics{{r.pos.ofKey("stages." + b.id + ".matrix"), fmt.Sprintf("stages.%s.matrix: at least %d combinations, more than %d stages: sweep fewer values, or split the sweep into several recipes", b.id, n, MaxStages)}}
	}
	var diags Diagnostics
	for _, params := range combinations(keys, matrix) {
		raw := maps.Clone(base)
		fromMatrix := map[string]int{}
		for _, p := range params {
			raw[p.Key] = p.Value
			fromMatrix[p.Key] = indexOf(matrix[p.Key].([]any), p.Value)
		}
		cfg := b.typ.New()
		for _, e := range config.Decode(raw, cfg) {
			path := "stages." + b.id + "." + e.Path
			top, _, _ := strings.Cut(e.Path, ".")
			if i, ok := fromMatrix[top]; ok {
				path = fmt.Sprintf("stages.%s.matrix.%s.%d", b.id, top, i)
			}
			diags = append(diags, Diagnostic{r.pos.ofValue(path), label("stages."+b.id+"."+e.Path) + e.Msg + paramNote(params)})
		}
		c := combo{params: params, config: cfg}
		if rf, ok := cfg.(config.Referrer); ok {
			c.refs = rf.References()
			for _, ref := range c.refs {
				if !slices.ContainsFunc(b.refs, func(x config.Ref) bool { return x == ref }) {
					b.refs = append(b.refs, ref)
				}
			}
		}
		b.combos = append(b.combos, c)
	}
	return slices.Compact(diags)
}

func paramNote(params []Param) string {
	if len(params) == 0 {
		return ""
	}
	return " (in matrix combination " + formatParams(params) + ")"
}

func indexOf(list []any, v any) int {
	for i, x := range list {
		if fmt.Sprint(x) == fmt.Sprint(v) {
			return i
		}
	}
	return 0
}

// MaxStages bounds the stages a recipe expands to (matrices and the branches
// they fan out into): a sweep of a few keys with a hundred values each would
// otherwise make millions of stages and exhaust memory while validating.
const MaxStages = 10000

// combinationCount is how many combinations a matrix has; more says it is
// above MaxStages, where counting stops (so no product overflows).
func combinationCount(keys []string, matrix map[string]any) (n int, more bool) {
	n = 1
	for _, k := range keys {
		values, _ := matrix[k].([]any)
		if n *= len(values); n > MaxStages {
			return n, true
		}
	}
	return n, false
}

// combinations lists the cartesian product of a matrix, keys sorted, values in the
// order written; a stage without a matrix has one empty combination.
func combinations(keys []string, matrix map[string]any) [][]Param {
	out := [][]Param{nil}
	for _, k := range keys {
		values, _ := matrix[k].([]any)
		var next [][]Param
		for _, prefix := range out {
			for _, v := range values {
				next = append(next, append(slices.Clone(prefix), Param{k, v}))
			}
		}
		out = next
	}
	return out
}

var validID = regexp.MustCompile(idPattern)

// checkRefs checks that needs and references name stages, with the right count.
func (r *Recipe) checkRefs(order []*baseStage, bases map[string]*baseStage) Diagnostics {
	var diags Diagnostics
	ids := make([]string, len(order))
	for i, b := range order {
		ids[i] = b.id
	}
	check := func(b *baseStage, path, ref string) {
		switch {
		case ref == b.id:
			diags = append(diags, Diagnostic{r.pos.ofValue(path), fmt.Sprintf("%s: stage %q cannot depend on itself", path, ref)})
		case bases[ref] == nil && validID.MatchString(ref):
			diags = append(diags, Diagnostic{r.pos.ofValue(path), fmt.Sprintf("%s: unknown stage %q%s", path, ref, config.DidYouMean(ref, ids))})
		}
	}
	for _, b := range order {
		if b.raw == nil || !b.known {
			continue
		}
		for i, n := range b.needs {
			check(b, fmt.Sprintf("stages.%s.needs.%d", b.id, i), n)
			if b.typ.FanIn && slices.Index(b.needs, n) < i {
				path := fmt.Sprintf("stages.%s.needs.%d", b.id, i)
				diags = append(diags, Diagnostic{r.pos.ofValue(path), fmt.Sprintf("%s: %q is listed twice", path, n)})
			}
		}
		for _, ref := range b.refs {
			path := "stages." + b.id + "." + ref.Path
			if !validID.MatchString(ref.Stage) { // needs get this from the schema; references do not
				diags = append(diags, Diagnostic{r.pos.ofValue(path), fmt.Sprintf("%s: %q is not a stage id: ids use lowercase letters, digits, '_' and '-'", path, ref.Stage)})
				continue
			}
			check(b, path, ref.Stage)
		}
		needsPath := "stages." + b.id + ".needs"
		switch {
		case b.typ.FanIn && len(b.needs) == 0:
			diags = append(diags, Diagnostic{r.pos.ofKey("stages." + b.id), fmt.Sprintf("stages.%s: a %s stage needs the stages to choose among (needs: [a, b] or a matrix stage)", b.id, b.typ.Name)})
		case !b.typ.FanIn && len(b.needs) > 1:
			diags = append(diags, Diagnostic{r.pos.ofValue(needsPath), fmt.Sprintf("%s: takes one stage, the model to transform, got %d; to choose among models, add a select stage", needsPath, len(b.needs))})
		}
	}
	return diags
}

// findCycles reports every cycle of the stage graph once, as "a -> b -> a" starting
// at its smallest id, so the message is the same on every run.
func findCycles(order []*baseStage, bases map[string]*baseStage, pos *positions) Diagnostics {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	seen := map[string]bool{}
	var diags Diagnostics
	var visit func(id string)
	visit = func(id string) {
		if bases[id] == nil {
			return // an unknown stage: reported by checkRefs
		}
		color[id] = grey
		stack = append(stack, id)
		for _, dep := range baseDeps(bases[id]) {
			if dep == id {
				continue // a self-reference is reported by checkRefs
			}
			switch color[dep] {
			case white:
				visit(dep)
			case grey:
				i := slices.Index(stack, dep)
				cycle := rotateSmallest(slices.Clone(stack[i:]))
				// The stack runs from dependent to dependency; print it the way data flows.
				slices.Reverse(cycle)
				cycle = rotateSmallest(cycle)
				key := strings.Join(cycle, " -> ")
				if !seen[key] {
					seen[key] = true
					first, next := cycle[0], cycle[(1)%len(cycle)]
					path := edgePath(bases[next], first)
					diags = append(diags, Diagnostic{pos.ofValue(path), fmt.Sprintf("%s: cycle: %s -> %s", path, key, cycle[0])})
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[id] = black
	}
	ids := make([]string, len(order))
	for i, b := range order {
		ids[i] = b.id
	}
	slices.Sort(ids)
	for _, id := range ids {
		if color[id] == white {
			visit(id)
		}
	}
	return diags
}

// baseDeps lists a base stage's dependencies, sorted.
func baseDeps(b *baseStage) []string {
	if b == nil {
		return nil
	}
	deps := slices.Clone(b.needs)
	for _, r := range b.refs {
		deps = append(deps, r.Stage)
	}
	slices.Sort(deps)
	return slices.Compact(deps)
}

// edgePath is the recipe key through which stage b depends on dep.
func edgePath(b *baseStage, dep string) string {
	if i := slices.Index(b.needs, dep); i >= 0 {
		return fmt.Sprintf("stages.%s.needs.%d", b.id, i)
	}
	for _, r := range b.refs {
		if r.Stage == dep {
			return "stages." + b.id + "." + r.Path
		}
	}
	return "stages." + b.id
}

func rotateSmallest(ids []string) []string {
	i := slices.Index(ids, slices.Min(ids))
	return append(ids[i:], ids[:i]...)
}

// expand turns base stages into the expanded DAG in run order: topological, ties
// broken by recipe order, then by combination order.
func expand(order []*baseStage, bases map[string]*baseStage, pos *positions) ([]*Stage, *tooManyStages) {
	byBase := map[string][]*Stage{}
	done := map[string]bool{}
	var out []*Stage
	// Kahn's algorithm on base stages; ready stages are taken in recipe order.
	for len(done) < len(order) {
		progress := false
		for _, b := range order {
			if done[b.id] || !allDone(baseDeps(b), done) {
				continue
			}
			stages, ok := expandOne(b, bases, byBase, pos, MaxStages-len(out))
			if !ok {
				return nil, &tooManyStages{stage: b.id, pos: b.pos}
			}
			byBase[b.id] = stages
			out = append(out, stages...)
			done[b.id] = true
			progress = true
			break
		}
		if !progress {
			panic("pipeline: expand called on a graph with a cycle or a missing stage")
		}
	}
	// A fan-in stage sees its candidates in run order: ties go to the first.
	runIndex := map[string]int{}
	for i, s := range out {
		runIndex[s.ID] = i
	}
	for _, s := range out {
		if bases[s.Base].typ.FanIn {
			slices.SortStableFunc(s.Needs, func(a, b string) int { return cmp.Compare(runIndex[a], runIndex[b]) })
		}
	}
	return out, nil
}

// tooManyStages names the stage whose expansion passed MaxStages.
type tooManyStages struct {
	stage string
	pos   Pos
}

// checkFanInRefs reports references of fan-in stages to a stage with several
// branches: a fan-in stage does not fan out, so it cannot tell which one it means
// (expandOne left the reference empty).
func (r *Recipe) checkFanInRefs() Diagnostics {
	branches := map[string]int{}
	for _, s := range r.Stages {
		branches[s.Base]++
	}
	var diags Diagnostics
	for _, s := range r.Stages {
		for i, ref := range s.Refs {
			if ref.Stage != "" {
				continue
			}
			base := s.baseRefs[i]
			path := "stages." + s.Base + "." + ref.Path
			diags = append(diags, Diagnostic{r.pos.ofValue(path), fmt.Sprintf("%s: stage %q has %d branches (from a matrix); a %s stage does not fan out, so refer to a stage with one branch, such as the one the matrix starts from", path, base, branches[base], s.Type)})
		}
	}
	return diags
}

func allDone(deps []string, done map[string]bool) bool {
	for _, d := range deps {
		if !done[d] {
			return false
		}
	}
	return true
}

// expandOne fans a stage out over the branches of the stages it reads, keeping only
// consistent combinations (the same choice for every matrix stage upstream), then
// over its own matrix. ok is false when that would make more than limit
// stages: it stops there, before the combinations exhaust memory.
func expandOne(b *baseStage, bases map[string]*baseStage, byBase map[string][]*Stage, pos *positions, limit int) (stages []*Stage, ok bool) {
	type context struct {
		assign map[string]int
		needs  []string
		refs   map[string]string // base id -> expanded id
	}
	contexts := []context{{assign: map[string]int{}, refs: map[string]string{}}}
	var fanOut []string // the deps whose branches this stage follows
	if !b.typ.FanIn {
		fanOut = baseDeps(b)
	}
	for _, dep := range fanOut {
		var next []context
		for _, ctx := range contexts {
			for _, x := range byBase[dep] {
				if !compatible(ctx.assign, x.assign) {
					continue
				}
				c := context{assign: maps.Clone(ctx.assign), refs: maps.Clone(ctx.refs)}
				maps.Copy(c.assign, x.assign)
				c.refs[dep] = x.ID
				next = append(next, c)
				if len(next) > limit {
					return nil, false
				}
			}
		}
		contexts = next
	}
	if len(contexts)*len(b.combos) > limit {
		return nil, false
	}
	var out []*Stage
	for _, ctx := range contexts {
		for ci, c := range b.combos {
			assign := maps.Clone(ctx.assign)
			if len(c.params) > 0 {
				assign[b.id] = ci
			}
			s := &Stage{
				Base: b.id, Type: b.typ.Name, Config: c.config, Pos: b.pos, Data: b.data,
				Resources: resources(b.raw["resources"]), assign: assign,
			}
			if b.typ.FanIn {
				for _, n := range b.needs {
					for _, x := range byBase[n] {
						s.Needs = append(s.Needs, x.ID)
					}
				}
			} else {
				for _, n := range b.needs {
					s.Needs = append(s.Needs, ctx.refs[n])
				}
			}
			for _, ref := range c.refs {
				id := ctx.refs[ref.Stage]
				if b.typ.FanIn && len(byBase[ref.Stage]) == 1 {
					id = byBase[ref.Stage][0].ID
				}
				s.Refs = append(s.Refs, config.Ref{Path: ref.Path, Stage: id})
				s.baseRefs = append(s.baseRefs, ref.Stage)
			}
			s.Params = paramsOf(assign, bases)
			s.ID = b.id
			if len(s.Params) > 0 {
				s.ID += "[" + formatParams(s.Params) + "]"
			}
			out = append(out, s)
		}
	}
	return out, true
}

func compatible(a, b map[string]int) bool {
	for k, v := range b {
		if w, ok := a[k]; ok && w != v {
			return false
		}
	}
	return true
}

// paramsOf lists the matrix values behind an assignment: matrix stages in recipe
// order, keys sorted; a key that two matrix stages share is qualified by stage id.
func paramsOf(assign map[string]int, bases map[string]*baseStage) []Param {
	stages := slices.SortedFunc(maps.Keys(assign), func(a, b string) int { return cmp.Compare(bases[a].index, bases[b].index) })
	count := map[string]int{}
	for _, id := range stages {
		for _, p := range bases[id].combos[assign[id]].params {
			count[p.Key]++
		}
	}
	var out []Param
	for _, id := range stages {
		for _, p := range bases[id].combos[assign[id]].params {
			if count[p.Key] > 1 {
				p.Key = id + "." + p.Key
			}
			out = append(out, p)
		}
	}
	return out
}

// formatParams writes matrix values the way the ids show them: amount=0.5,bits=4.
func formatParams(params []Param) string {
	parts := make([]string, len(params))
	for i, p := range params {
		parts[i] = p.Key + "=" + FormatValue(p.Value)
	}
	return strings.Join(parts, ",")
}

// FormatValue prints a recipe value compactly: numbers as YAML writes them, strings
// bare, anything else as JSON.
func FormatValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case float64:
		s := config.FormatNumber(x)
		if !strings.ContainsAny(s, ".e") {
			s += ".0" // keep 1.0 (a fraction) apart from 1 (a count)
		}
		return s
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func resources(raw any) Resources {
	m, _ := raw.(map[string]any)
	var r Resources
	if m != nil {
		if v, ok := m["cpu"]; ok {
			r.CPU = FormatValue(v)
		}
		if v, ok := m["memory"].(string); ok {
			r.Memory = v
		}
	}
	return r
}

// checkModels follows the model's architecture through the DAG in run order and
// checks each stage against what it receives: the layers it names, and a stage
// that builds a new model having no input. After a select the model is any of
// its candidates, so a stage is checked against each architecture they have.
func (r *Recipe) checkModels() Diagnostics {
	var diags Diagnostics
	reported := map[string]bool{} // a base stage's error once, not once per expansion
	archsOf := map[string][]arch.Spec{}
	for _, s := range r.Stages {
		in := []arch.Spec{r.Model}
		if len(s.Needs) > 0 {
			in = nil
			for _, n := range s.Needs {
				for _, a := range archsOf[n] {
					if !slices.ContainsFunc(in, func(b arch.Spec) bool { return b.JSON() == a.JSON() }) {
						in = append(in, a)
					}
				}
			}
		}
		out := in
		if m, ok := s.Config.(ArchMaker); ok {
			if spec, ok := m.OutputArch(r.Model); ok {
				out = []arch.Spec{spec}
			}
		}
		if c, ok := s.Config.(ArchChanger); ok {
			out = nil
			for _, a := range in {
				if spec, err := c.ChangeArch(a); err == nil {
					a = spec
				}
				out = append(out, a)
			}
		}
		archsOf[s.ID] = out
		if m, ok := s.Config.(ModelMaker); ok && m.MakesModel() && len(s.Needs) > 0 {
			path := "stages." + s.Base + ".needs"
			if !reported[path] {
				reported[path] = true
				diags = append(diags, Diagnostic{r.pos.ofValue(path), label(path) + "this stage trains a new model from scratch, so it transforms no input: remove needs (a teacher is named with teacher)"})
			}
		}
		c, ok := s.Config.(ModelChecker)
		if !ok {
			continue
		}
		for _, spec := range in {
			for _, e := range config.AsErrors(c.CheckModel(spec)) {
				path := "stages." + s.Base + "." + e.Path
				if reported[path] {
					continue
				}
				reported[path] = true
				msg := e.Msg
				if len(in) > 1 {
					msg += ", one of the models a select before this stage may choose"
				}
				diags = append(diags, Diagnostic{r.pos.ofValue(path), label(path) + msg})
			}
		}
	}
	return diags
}
