package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
)

func (a *app) gcCommand() *cobra.Command {
	var cacheDir string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "gc RUN_DIR...",
		Short: "Remove stored results that no run references",
		Long: `Remove from the result store every result that none of the given run folders'
run.json references, and the leftovers of interrupted work (half-assembled
results, the saved training state of interrupted stages: those stages will start
over). Without --cache-dir, each run folder's own store is cleaned against its run.
With a shared --cache-dir, list every run folder that uses it: results only
other runs reference are removed. Work in progress is safe: a stage running
meanwhile (in any run sharing the store) holds its folder, and gc leaves it.`,
		Example: "  shrink gc runs/quickstart\n  shrink gc --cache-dir /shared/shrink-cache runs/a runs/b",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			groups := map[string][]string{}
			if cacheDir != "" {
				groups[cacheDir] = args
			} else {
				for _, d := range args {
					groups[runner.DefaultStore(d)] = []string{d}
				}
			}
			stores := make([]string, 0, len(groups))
			for s := range groups {
				stores = append(stores, s)
			}
			sort.Strings(stores)
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, store := range stores {
				res, err := runner.GC(store, groups[store], dryRun)
				if err != nil {
					return err
				}
				inUse := ""
				if len(res.InUse) > 0 {
					inUse = fmt.Sprintf("; left %d folder(s) of running stages alone", len(res.InUse))
				}
				fmt.Fprintf(a.stdout, "%s: kept %d result(s), %s %d result(s) and %d leftover(s), %s%s\n",
					store, len(res.Kept), verb, len(res.Removed), len(res.Leftovers), humanBytes(res.Freed), inUse)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "a shared store the run folders use")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be removed, remove nothing")
	return cmd
}

func (a *app) diffCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "diff RUN_A RUN_B",
		Short: "Compare two runs: their resolved recipes and every stage's metrics",
		Long: `Print the keys whose values differ between the two runs' resolved recipes
(overrides included), then each stage's status and metric changes from A to B.`,
		Example: "  shrink diff runs/lenet300 runs/lenet300-seed7",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ma, err := runner.ReadManifest(args[0])
			if err != nil {
				return usageError{err}
			}
			mb, err := runner.ReadManifest(args[1])
			if err != nil {
				return usageError{err}
			}
			a.diffRecipes(ma, mb)
			a.diffStages(ma, mb)
			return nil
		},
	}
}

func (a *app) diffRecipes(ma, mb *runner.Manifest) {
	fa, fb := flatten("", resolvedTree(ma)), flatten("", resolvedTree(mb))
	keys := map[string]bool{}
	for k := range fa {
		keys[k] = true
	}
	for k := range fb {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		if fa[k] != fb[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	fmt.Fprintln(a.stdout, "recipe:")
	if len(names) == 0 {
		fmt.Fprintln(a.stdout, "  (identical)")
	}
	for _, k := range names {
		fmt.Fprintf(a.stdout, "  %s: %s -> %s\n", k, orUnset(fa[k]), orUnset(fb[k]))
	}
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

// resolvedTree is a run's resolved recipe with YAML's types (1 and 1.0 apart),
// from its resolved_yaml when recorded.
func resolvedTree(m *runner.Manifest) any {
	if m.Recipe.YAML != "" {
		var tree map[string]any
		if err := yaml.Unmarshal([]byte(m.Recipe.YAML), &tree); err == nil {
			return tree
		}
	}
	return m.Recipe.Resolved
}

// flatten lists a tree's leaves by dotted path.
func flatten(prefix string, v any) map[string]string {
	out := map[string]string{}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			for kk, vv := range flatten(p, e) {
				out[kk] = vv
			}
		}
	default:
		out[prefix] = pipeline.FormatValue(v)
	}
	return out
}

// diffMetrics are the metrics diff shows, in order.
var diffMetrics = []string{"accuracy", "loss", "params_total", "params_nonzero", "sparsity", "size_bytes", "compressed_bytes", "compression_ratio", "seconds"}

func (a *app) diffStages(ma, mb *runner.Manifest) {
	fmt.Fprintln(a.stdout, "stages:")
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  STAGE\tSTATUS\tMETRIC\tA\tB\tDELTA")
	seen := map[string]bool{}
	var ids []string
	for _, s := range ma.Stages {
		ids = append(ids, s.ID)
		seen[s.ID] = true
	}
	for _, s := range mb.Stages {
		if !seen[s.ID] {
			ids = append(ids, s.ID)
		}
	}
	for _, id := range ids {
		sa, sb := ma.Stage(id), mb.Stage(id)
		status := statusOf(sa) + " -> " + statusOf(sb)
		same := sa != nil && sb != nil && sa.SHA256 == sb.SHA256
		if same {
			status += " (same checkpoint)"
		}
		printed := false
		for _, k := range diffMetrics {
			va, oka := metric(sa, k)
			vb, okb := metric(sb, k)
			if !oka && !okb || (oka && okb && va == vb) {
				continue
			}
			delta := "-"
			if oka && okb {
				delta = signed(vb - va)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", id, status, k, num(va, oka), num(vb, okb), delta)
			id, status, printed = "", "", true
		}
		if !printed {
			fmt.Fprintf(tw, "  %s\t%s\t(no metric changed)\t\t\t\n", id, status)
		}
	}
	tw.Flush()
}

func statusOf(s *runner.StageRecord) string {
	if s == nil {
		return "absent"
	}
	return s.Status
}

func metric(s *runner.StageRecord, k string) (float64, bool) {
	if s == nil {
		return 0, false
	}
	return config.AsFloat(s.Metrics[k])
}

func num(x float64, ok bool) string {
	if !ok {
		return "-"
	}
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return fmt.Sprintf("%.0f", x)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.6f", x), "0"), ".")
}

func signed(x float64) string {
	s := num(x, true)
	if x > 0 {
		s = "+" + s
	}
	return s
}
