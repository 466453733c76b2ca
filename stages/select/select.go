// Package selection is the select stage (select is a Go keyword, hence the
// package name): it takes every branch it needs, ranks them by a metric from
// their metrics.json, keeps those meeting its constraints, and outputs the
// winner's checkpoint byte for byte.
//
//	best:
//	  type: select
//	  needs: [quantize]            # a matrix stage: all its branches
//	  metric: [size_bytes, params_nonzero]
//	  goal: min
//	  where:
//	    accuracy: {relative_to: train, min: -0.005}   # within 0.5 points of train
package selection

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/stages"
)

func init() {
	stages.Register(stages.Type{
		Name:    "select",
		Summary: "choose one model among branches (a matrix stage's, or the listed stages') by a metric, subject to constraints; outputs it unchanged",
		New:     func() stages.Config { return &Config{} },
		FanIn:   true,
	})
}

// Goals.
const (
	Max = "max"
	Min = "min"
)

// Config is the select stage's keys.
type Config struct {
	Metric Metric            `json:"metric" doc:"the metrics.json key to rank candidates by (accuracy, size_bytes, params_nonzero, a nested key like layers.fc1.bits), or a list of keys: a tie on the first is broken by the second, and so on; a tie on all goes to the first candidate in run order"`
	Goal   string            `json:"goal,omitempty" enum:"max,min" doc:"max: the largest value wins (accuracy); min: the smallest (size_bytes)"`
	Where  map[string]*Bound `json:"where,omitempty" doc:"constraints, METRIC: {min, max}: a candidate outside them is rejected; with relative_to: STAGE, min and max are offsets from that stage's value of the metric (accuracy: {relative_to: train, min: -0.005} is within 0.5 points of train's accuracy)"`
}

// Bound constrains one metric.
type Bound struct {
	Min        *float64 `json:"min,omitempty" doc:"the smallest value allowed (an offset from relative_to's value when set)"`
	Max        *float64 `json:"max,omitempty" doc:"the largest value allowed (an offset from relative_to's value when set)"`
	RelativeTo StageID  `json:"relative_to,omitempty" doc:"a stage id: min and max are then added to that stage's value of this metric; the stage becomes an edge of the DAG and must have one branch"`
}

var (
	_ config.Validator = (*Config)(nil)
	_ config.Validator = (*Bound)(nil)
	_ config.Referrer  = (*Config)(nil)
)

// metricName is a metrics.json key, or a dotted path into its nested objects.
var metricName = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// Validate checks that the ranking is complete and the metric names are keys.
func (c *Config) Validate() error {
	var errs config.Errors
	if len(c.Metric) == 0 {
		errs = append(errs, config.Errorf("metric", "missing: name the metrics.json key to rank by, e.g. metric: accuracy (with goal: max) or metric: size_bytes (with goal: min)"))
	}
	for i, m := range c.Metric {
		errs = append(errs, checkMetric(fmt.Sprintf("metric.%d", i), m)...)
	}
	if c.Goal == "" {
		errs = append(errs, config.Errorf("goal", "missing: max (the largest value wins, e.g. accuracy) or min (the smallest wins, e.g. size_bytes)"))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Where)) {
		errs = append(errs, checkMetric("where."+k, k)...)
	}
	return errs.Err()
}

// checkMetric rejects what cannot be a metrics.json key, and a near miss of a
// key every stage writes (acuracy): a stage's own keys (teacher_accuracy) are
// found only at run time, so anything else passes here.
func checkMetric(path, name string) config.Errors {
	if !metricName.MatchString(name) {
		return config.Errors{config.Errorf(path, "%q is not a metrics.json key (letters, digits, '_', '-', and '.' between nested keys)", name)}
	}
	top, _, _ := strings.Cut(name, ".")
	if !slices.Contains(stages.CommonMetrics, top) {
		if near := config.Closest(top, stages.CommonMetrics); near != "" {
			return config.Errors{config.Errorf(path, "%q is not a metric shrink writes (did you mean %q?); every stage writes %s", name, near, strings.Join(stages.CommonMetrics, ", "))}
		}
	}
	return nil
}

// Validate asks for at least one limit, in order.
func (b *Bound) Validate() error {
	switch {
	case b.Min == nil && b.Max == nil:
		return config.Errorf("", "give min, max or both (e.g. {min: 0.97}); with relative_to they are offsets (e.g. {relative_to: train, min: -0.005})")
	case b.Min != nil && b.Max != nil && *b.Min > *b.Max:
		return config.Errorf("min", "%s is above max %s: no value can meet both", config.FormatNumber(*b.Min), config.FormatNumber(*b.Max))
	}
	return nil
}

// References makes every relative_to stage an edge of the DAG.
func (c *Config) References() []config.Ref {
	var refs []config.Ref
	for _, k := range slices.Sorted(maps.Keys(c.Where)) {
		if b := c.Where[k]; b != nil && b.RelativeTo != "" {
			refs = append(refs, config.Ref{Path: refPath(k), Stage: string(b.RelativeTo)})
		}
	}
	return refs
}

// refPath is the config key of a constraint's reference.
func refPath(metric string) string { return "where." + metric + ".relative_to" }
