package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
	"github.com/spf13/pflag"
)

// jobsFlag is --jobs: a positive count, or 0 (the default) for automatic.
type jobsFlag struct{ n *int }

func (j jobsFlag) String() string {
	if j.n == nil || *j.n == 0 {
		return "auto"
	}
	return strconv.Itoa(*j.n)
}

func (j jobsFlag) Set(s string) error {
	if s == "auto" {
		*j.n = 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a number of stages at least 1, or auto (0)")
	}
	*j.n = n
	return nil
}

func (jobsFlag) Type() string { return "N" }

const jobsUsage = "independent stages to run at once (auto: one per CPU, fewer when memory is short; see docs/BRANCHES.md)"

// jobs resolves --jobs for a recipe, logging how auto chose.
func (a *app) jobs(recipe *pipeline.Recipe, n int) int {
	if n > 0 {
		return n
	}
	n, why := runner.AutoJobs(recipe)
	a.log.Debug().Int("jobs", n).Str("why", why).Msg("parallel stages")
	return n
}

// enumFlag is a string flag with a fixed set of values, checked as the flags
// are parsed (a bad value is bad usage before the command starts).
type enumFlag struct {
	name    string
	value   *string
	choices []string
}

// enumVar defines a flag that takes one of choices.
func enumVar(fs *pflag.FlagSet, p *string, name, def string, choices []string, usage string) {
	*p = def
	fs.Var(&enumFlag{name, p, choices}, name, usage)
}

func (e *enumFlag) String() string { return *e.value }
func (e *enumFlag) Type() string   { return strings.Join(e.choices, "|") }

func (e *enumFlag) Set(s string) error {
	if !slices.Contains(e.choices, s) {
		return fmt.Errorf("--%s must be %s, not %q", e.name, strings.Join(e.choices, " or "), s)
	}
	*e.value = s
	return nil
}
