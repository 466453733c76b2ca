package report

import (
	"fmt"
	"path/filepath"
	"strings"
)

// markdown renders report.md. plots are the PNG files written, by name.
func (r *Run) markdown(plots map[string]bool) string {
	var b strings.Builder
	man := r.Manifest
	rec := man.Recipe
	fmt.Fprintf(&b, "# shrink report: %s\n\n", rec.Name)
	fmt.Fprintf(&b, "Produced by the recipe `%s` (name `%s`, sha256 `%s`) with seed %d", rec.File, rec.Name, short(rec.SHA256), man.Seed)
	if len(rec.Sets) > 0 {
		fmt.Fprintf(&b, " and the overrides `%s`", strings.Join(rec.Sets, "`, `"))
	}
	fmt.Fprintf(&b, "; shrink %s, %s. Run status: %s.\n", man.ShrinkVersion, man.GoVersion, man.Status)
	fmt.Fprintf(&b, "Reproduce it with `shrink run %s%s --run-dir %s`, then `shrink report %s` (or rerun exactly what ran, with its overrides: `shrink run --replay %s`).\n\n",
		shellQuote(rec.File), setFlags(rec.Sets), shellQuote(r.Dir), shellQuote(r.Dir), shellQuote(filepath.Join(r.Dir, "run.json")))
	b.WriteString("*size* is the stage's checkpoint (safetensors); *compressed* is its `shrink export --format compressed` file, ")
	b.WriteString("the deployed size; *ratio* is the dense F32 size of the recipe's model")
	if r.Dense > 0 {
		fmt.Fprintf(&b, " (%s parameters, %s)", thousands(r.Dense/4), kb(r.Dense))
	}
	b.WriteString(" over the compressed size; *MACs* are multiply-accumulates per sample (structured pruning lowers them, masks do not). KB = 1000 bytes.\n\n")

	latency := false
	for _, s := range r.Stages {
		latency = latency || s.Latency > 0
	}
	if latency {
		b.WriteString("*latency* is the checkpoint's median inference time for one sample on the machine that wrote this report ")
		b.WriteString("(`shrink report --latency`; each layer on the kernels `shrink bench` lists).\n\n")
	}
	b.WriteString("## Stages\n\n")
	lat, latSep := "", ""
	if latency {
		lat, latSep = " latency |", " ---: |"
	}
	b.WriteString("| stage | type | status | accuracy | params | nonzero | sparsity | MACs | size | compressed | ratio |" + lat + " seconds |\n")
	b.WriteString("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + latSep + " ---: |\n")
	recomputed := false
	for _, s := range r.Stages {
		status := s.Status
		if s.Selected != "" {
			status += ", selected " + s.Selected
		}
		if !s.Measured {
			dash := ""
			if latency {
				dash = " - |"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | - | - | - | - | - | - | - | - |%s %.1f |\n", s.ID, s.Type, status, dash, s.Seconds)
			continue
		}
		acc := "-"
		if s.Accuracy != nil {
			acc = fmt.Sprintf("%.2f%%", 100**s.Accuracy)
		}
		comp, ratio := "-", "-"
		if s.Compressed > 0 {
			comp = kb(s.Compressed)
			if s.Recomputed {
				comp += "*"
				recomputed = true
			}
		}
		if s.Ratio > 0 {
			ratio = fmt.Sprintf("%.1fx", s.Ratio)
		}
		lat := ""
		if latency {
			lat = " - |"
			if s.Latency > 0 {
				lat = " " + micros(s.Latency) + " |"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.2f%% | %s | %s | %s | %s |%s %.1f |\n",
			s.ID, s.Type, status, acc, thousands(s.Params), thousands(s.NonZero), 100*s.Sparsity, macs(s.MACs), kb(s.Size), comp, ratio, lat, s.Seconds)
	}
	if recomputed {
		b.WriteString("\n\\* measured by `shrink report`: the stage's stored metrics predate compressed sizes.\n")
	}
	if un := r.unfinished(); len(un) > 0 {
		fmt.Fprintf(&b, "\nNot finished (run status: %s):\n\n", man.Status)
		for _, s := range un {
			why := s.Error
			if why == "" {
				why = s.Reason
			}
			if why == "" {
				why = "not run"
			}
			fmt.Fprintf(&b, "- `%s` %s: %s\n", s.ID, s.Status, oneLine(why))
		}
	}
	b.WriteString("\n## Compression frontier\n\n")
	if plots["frontier.png"] {
		b.WriteString("![Test accuracy against compressed size, every stage](frontier.png)\n\n")
		var ids []string
		for _, p := range pareto(r.points()) {
			ids = append(ids, "`"+p.stage.ID+"`")
		}
		fmt.Fprintf(&b, "Pareto frontier (no other stage is both smaller and at least as accurate), smallest first: %s.\n", strings.Join(ids, ", "))
	} else if r.hasData() && len(r.unfinished()) > 0 {
		fmt.Fprintf(&b, "No finished stage has both an accuracy and a compressed size (%d stage(s) did not finish, see above), so there is no frontier.\n", len(r.unfinished()))
	} else {
		b.WriteString("No stage has both an accuracy and a compressed size (the recipe has no test data), so there is no frontier.\n")
	}
	b.WriteString("\n## Layers\n\n")
	b.WriteString("Kept: the share of a layer's weights that are not zero; bits: its weights' width (32 = float); rank: its factorization's, or full; MACs: its multiply-accumulates per sample.\n\n")
	b.WriteString("| stage | layer | shape | weights | kept | bits | rank | MACs |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range r.measured() {
		for _, name := range r.LayerNames {
			l, ok := s.Layers[name]
			if !ok {
				continue
			}
			rank := "full"
			if l.Rank > 0 {
				rank = fmt.Sprint(l.Rank)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %.2f%% | %d | %s | %s |\n", s.ID, name, shape(l.Shape), thousands(int64(l.Params)), 100*(1-l.Sparsity), l.Bits, rank, macs(l.MACs))
		}
	}
	b.WriteString("\n")
	for _, m := range layerMetrics {
		if plots[m.file] {
			fmt.Fprintf(&b, "![%s](%s)\n\n", m.title, m.file)
		}
	}
	return b.String()
}

// macs prints a MAC count, "-" for metrics written before MACs were measured.
func macs(n int64) string {
	if n == 0 {
		return "-"
	}
	return thousands(n)
}

// oneLine keeps a message on one markdown line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func setFlags(sets []string) string {
	var b strings.Builder
	for _, s := range sets {
		fmt.Fprintf(&b, " --set %s", shellQuote(s))
	}
	return b.String()
}

// micros prints seconds as µs (ms from 10 ms on).
func micros(s float64) string {
	if s >= 0.01 {
		return fmt.Sprintf("%.1f ms", s*1e3)
	}
	return fmt.Sprintf("%.1f µs", s*1e6)
}

// shellQuote makes s one word for a POSIX shell: as it is when it holds only
// characters no shell treats specially, else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,@+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// kb formats bytes as KB (1000 bytes) with one decimal: 1,066.4 KB.
func kb(n int64) string {
	tenths := (n + 50) / 100
	return fmt.Sprintf("%s.%d KB", thousands(tenths/10), tenths%10)
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func shape(dims []int) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = fmt.Sprint(d)
	}
	return strings.Join(parts, "×")
}
