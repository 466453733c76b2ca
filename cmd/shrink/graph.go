package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shrink-ml/shrink/runner"
)

func (a *app) graphCommand() *cobra.Command {
	var f runFlags
	var format string
	cmd := &cobra.Command{
		Use:   "graph RECIPE --format dot|mermaid",
		Short: "Print the expanded DAG, each stage cached or to run, as Graphviz dot or Mermaid",
		Long: `Print the recipe's DAG after matrix expansion: one node per stage (the branches
of a matrix stage, or of a stage fanned out with one, grouped in a box), solid arrows for needs, dashed arrows for other
references (a distillation teacher, a select's relative_to), and each node's status
against the run folder: cached (its stored result will be reused) or run. When a
select stage is cached, the arrow from the branch it chose is drawn bold.
Nothing is run.`,
		Example: `  shrink graph recipes/sweep-select.yaml --format dot | dot -Tsvg > sweep.svg
  shrink graph recipes/sweep-select.yaml --format mermaid`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			recipe, items, err := a.plan(args[0], &f)
			if err != nil {
				return err
			}
			g := newGraph(recipe.Name, items)
			if format == "dot" {
				return g.dot(a.stdout)
			}
			return g.mermaid(a.stdout)
		},
	}
	f.register(cmd, false)
	enumVar(cmd.Flags(), &format, "format", "dot", []string{"dot", "mermaid"}, "dot (Graphviz) or mermaid")
	return cmd
}

// graph is the expanded DAG as the printers need it.
type graph struct {
	name   string
	nodes  []graphNode
	edges  []graphEdge
	groups []graphGroup // branches, by recipe stage
}

type graphNode struct {
	id, typ, status string
}

type graphEdge struct {
	from, to int
	label    string // "" for needs; the config key for references
	chosen   bool   // the branch a cached select chose
}

type graphGroup struct {
	base  string
	nodes []int
}

func newGraph(name string, items []*runner.PlanItem) *graph {
	g := &graph{name: name}
	index := map[string]int{}
	groupOf := map[string]int{}
	for i, it := range items {
		s := it.Stage
		index[s.ID] = i
		g.nodes = append(g.nodes, graphNode{id: s.ID, typ: s.Type, status: it.Status})
		if len(s.Params) == 0 {
			continue
		}
		gi, ok := groupOf[s.Base]
		if !ok {
			gi = len(g.groups)
			groupOf[s.Base] = gi
			g.groups = append(g.groups, graphGroup{base: s.Base})
		}
		g.groups[gi].nodes = append(g.groups[gi].nodes, i)
	}
	for i, it := range items {
		s := it.Stage
		chosen := ""
		if it.Entry != nil && s.Type == "select" {
			chosen, _ = it.Entry.Metrics["selected"].(string)
		}
		for _, n := range s.Needs {
			g.edges = append(g.edges, graphEdge{from: index[n], to: i, chosen: n == chosen})
		}
		for _, ref := range s.Refs {
			g.edges = append(g.edges, graphEdge{from: index[ref.Stage], to: i, label: ref.Path})
		}
	}
	// A one-value matrix makes a group of one: not worth a box (its id still
	// shows the value).
	var groups []graphGroup
	for _, gr := range g.groups {
		if len(gr.nodes) > 1 {
			groups = append(groups, gr)
		}
	}
	g.groups = groups
	return g
}

func (g *graph) dot(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(g.name))
	b.WriteString("  rankdir=LR;\n")
	b.WriteString("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n")
	b.WriteString("  edge [fontname=\"Helvetica\", fontsize=10];\n")
	g.writeNodes(&b, func(gi int, label string) string {
		return fmt.Sprintf("subgraph cluster_%d {\n    label=%s;\n    style=dashed;", gi, dotQuote(label))
	}, "}", g.dotNode)
	for _, e := range g.edges {
		var attrs []string
		if e.label != "" {
			attrs = append(attrs, "style=dashed", "label="+dotQuote(e.label))
		}
		if e.chosen {
			attrs = append(attrs, "penwidth=3", "label=\"selected\"")
		}
		line := fmt.Sprintf("  %s -> %s", dotQuote(g.nodes[e.from].id), dotQuote(g.nodes[e.to].id))
		if len(attrs) > 0 {
			line += " [" + strings.Join(attrs, ", ") + "]"
		}
		b.WriteString(line + ";\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// statusColors fill cached stages green and stages to run orange.
var statusColors = map[string]string{"cached": "#d9ead3", "run": "#fce5cd"}

func (g *graph) dotNode(i int) string {
	n := g.nodes[i]
	return fmt.Sprintf("%s [label=%s, fillcolor=%s];", dotQuote(n.id), dotQuote(n.id+"\n"+n.typ+" · "+n.status), dotQuote(statusColors[n.status]))
}

// dotQuote writes a dot string: backslashes and quotes escaped, newlines as \n.
func dotQuote(s string) string {
	s = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
	return `"` + s + `"`
}

func (g *graph) mermaid(w io.Writer) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	g.writeNodes(&b, func(gi int, label string) string {
		return fmt.Sprintf("subgraph m%d[%s]", gi, mermaidQuote(label))
	}, "end", g.mermaidNode)
	for _, e := range g.edges {
		arrow := " --> "
		switch {
		case e.chosen:
			arrow = " ==>|selected| "
		case e.label != "":
			arrow = " -. " + mermaidText(e.label) + " .-> "
		}
		fmt.Fprintf(&b, "  n%d%sn%d\n", e.from, arrow, e.to)
	}
	b.WriteString("  classDef cached fill:#d9ead3,stroke:#6aa84f\n")
	b.WriteString("  classDef run fill:#fce5cd,stroke:#e69138\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (g *graph) mermaidNode(i int) string {
	n := g.nodes[i]
	return fmt.Sprintf("n%d[%s]:::%s", i, mermaidQuote(n.id+"<br/>"+n.typ+" · "+n.status), n.status)
}

// mermaidQuote makes a quoted Mermaid label; quotes inside become #quot;.
func mermaidQuote(s string) string { return `"` + mermaidText(s) + `"` }

func mermaidText(s string) string { return strings.ReplaceAll(s, `"`, "#quot;") }

// writeNodes writes the nodes in either format: each matrix's branches in a
// group (opened by open, closed by end), then the stages outside any.
func (g *graph) writeNodes(b *strings.Builder, open func(group int, label string) string, end string, node func(int) string) {
	grouped := map[int]bool{}
	for gi, gr := range g.groups {
		b.WriteString("  " + open(gi, fmt.Sprintf("%s (%d branches)", gr.base, len(gr.nodes))) + "\n")
		for _, n := range gr.nodes {
			grouped[n] = true
			b.WriteString("    " + node(n) + "\n")
		}
		b.WriteString("  " + end + "\n")
	}
	for i := range g.nodes {
		if !grouped[i] {
			b.WriteString("  " + node(i) + "\n")
		}
	}
}
