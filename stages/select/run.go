package selection

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/shrink-ml/shrink/stages"
)

// Run judges every input by its metrics.json and passes the winner through.
func (c *Config) Run(ctx *stages.Context) (*stages.Result, error) {
	if ctx.Stage == nil || len(ctx.Stage.Needs) == 0 {
		return nil, fmt.Errorf("a select stage needs candidates: needs: [STAGE...]")
	}
	ids := ctx.Stage.Needs // in run order: ties go to the first
	refs := map[string]ref{}
	for k, b := range c.Where {
		if b != nil && b.RelativeTo != "" {
			id := ctx.Refs[refPath(k)]
			refs[k] = ref{stage: id, metrics: ctx.InputMetrics[id]}
		}
	}
	limits, err := c.limits(refs)
	if err != nil {
		return nil, err
	}
	d := c.decide(ids, ctx.InputMetrics, limits)
	for _, cand := range d.Candidates {
		ev := ctx.Log.Info().Str("candidate", cand.Stage).Interface("values", cand.Values)
		if !cand.OK() {
			ev = ev.Strs("rejected", cand.Failed)
		}
		ev.Bool("selected", cand.Stage == d.Selected).Msg("candidate")
	}
	if d.Selected == "" {
		return nil, c.noneQualified(d)
	}
	reason := c.reason(d)
	ctx.Log.Info().Str("selected", d.Selected).Msg(reason)
	return &stages.Result{SameAs: d.Selected, Metrics: map[string]any{
		"selected":    d.Selected,
		"reason":      reason,
		"metric":      []string(c.Metric),
		"goal":        c.Goal,
		"candidates":  d.Candidates,
		"constraints": d.Limits,
	}}, nil
}

// reason says in a sentence why the winner won.
func (c *Config) reason(d *Decision) string {
	ok := 0
	var win *Candidate
	for _, cand := range d.Candidates {
		if cand.OK() {
			ok++
		}
		if cand.Stage == d.Selected {
			win = cand
		}
	}
	word := "smallest"
	if c.Goal == Max {
		word = "largest"
	}
	var vals []string
	for _, k := range c.Metric {
		vals = append(vals, k+" "+num(win.Values[k]))
	}
	among := fmt.Sprintf("the %d candidate(s)", len(d.Candidates))
	if len(d.Limits) > 0 {
		among = fmt.Sprintf("the %d of %d candidate(s) that meet %s", ok, len(d.Candidates), c.describeLimits(d.Limits))
	}
	return fmt.Sprintf("%s has the %s %s among %s", win.Stage, word, strings.Join(vals, ", then "), among)
}

// describeLimits writes the resolved constraints: "accuracy >= 0.9765".
func (c *Config) describeLimits(limits map[string]Limit) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(limits)) {
		l := limits[k]
		if l.Min != nil {
			parts = append(parts, k+" >= "+num(*l.Min))
		}
		if l.Max != nil {
			parts = append(parts, k+" <= "+num(*l.Max))
		}
	}
	return strings.Join(parts, ", ")
}

// noneQualified is the stage's failure when every candidate was rejected: each
// one and why, on one line (run.json and the summary table hold it).
func (c *Config) noneQualified(d *Decision) error {
	var parts []string
	for _, cand := range d.Candidates {
		parts = append(parts, cand.Stage+": "+strings.Join(cand.Failed, ", "))
	}
	what, fix := "", "check the metric names against the candidates' metrics.json"
	if len(d.Limits) > 0 {
		what, fix = " (constraints: "+c.describeLimits(d.Limits)+")", "loosen where or widen the matrix"
	}
	return fmt.Errorf("no candidate qualifies%s: %s; %s", what, strings.Join(parts, "; "), fix)
}
