package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/compress"
	"github.com/shrink-ml/shrink/onnx/onnximport"
)

func (a *app) modelCommand() *cobra.Command {
	var format string
	var sets []string
	cmd := &cobra.Command{
		Use:   "model RECIPE|CHECKPOINT",
		Short: "Print the recipe's network as a layer list, with shapes, parameters and MACs",
		Long: `Print the network the recipe's model section describes, expanded to its layers: a
preset (arch: resnet, ...) as the explicit list it stands for, each layer with
its output shape (one sample's), its parameters (what PyTorch's parameters()
counts: batch norm's running statistics are buffers, not parameters) and its
multiply-accumulates per sample. Given a shrink checkpoint instead (.safetensors,
a compressed export, or an .onnx file's imported network), print the network it
records: after structured pruning with physical: true, the narrower network, to
compare with the recipe's.

--format yaml (the default) prints a model section you can copy into a recipe
and edit; the numbers are comments. --format json prints
{"layers": [{"name", "type", "output_shape", "params", "macs"}, ...],
 "params_total": N, "macs_total": M}.`,
		Example: `  shrink model recipes/resnet-fashion.yaml
  shrink model runs/resnet-fashion-compress/prune/model.safetensors
  shrink model recipes/quickstart.yaml --format json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var spec *arch.Spec
			if isCheckpoint(args[0]) {
				if len(sets) > 0 {
					return usagef("--set changes a recipe: %s is a checkpoint, whose network is fixed; drop --set, or give the recipe", args[0])
				}
				s, err := checkpointArch(args[0])
				if err != nil {
					return err
				}
				spec = &s
			} else {
				recipe, err := a.loadRecipe(args[0], sets)
				if err != nil {
					return err
				}
				spec = &recipe.Model
			}
			g, err := spec.Graph()
			if err != nil {
				return fmt.Errorf("model: %w", err)
			}
			if format == "json" {
				return writeModelJSON(a.stdout, g)
			}
			return writeModelYAML(a.stdout, g)
		},
	}
	enumVar(cmd.Flags(), &format, "format", "yaml", []string{"yaml", "json"}, "output format")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a recipe key (repeatable)")
	return cmd
}

// isCheckpoint tells a checkpoint from a recipe: by its extension
// (.safetensors, .onnx), or a compressed export by its first bytes, whatever
// its name (the docs use .shkz), so it is not parsed as YAML.
func isCheckpoint(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".safetensors", ".onnx":
		return true
	case ".yaml", ".yml":
		return false
	}
	fh, err := os.Open(path)
	if err != nil {
		return false // loadRecipe names the file and the problem
	}
	defer fh.Close()
	var head [4]byte
	n, _ := io.ReadFull(fh, head[:])
	return compress.IsCompressed(head[:n])
}

// checkpointArch is the architecture a shrink checkpoint (either format) or
// an ONNX file records.
func checkpointArch(path string) (arch.Spec, error) {
	if strings.EqualFold(filepath.Ext(path), ".onnx") {
		res, err := onnximport.ReadFile(path)
		if err != nil {
			return arch.Spec{}, err
		}
		return res.Spec, nil
	}
	f, _, err := compress.ReadFile(path)
	if err != nil {
		return arch.Spec{}, err
	}
	js, ok := f.Metadata["arch"]
	if !ok {
		return arch.Spec{}, fmt.Errorf("%s has no arch metadata (a PyTorch state_dict?): run shrink model on the recipe whose model section describes it", path)
	}
	s, err := arch.Parse(js)
	if err != nil {
		return arch.Spec{}, fmt.Errorf("%s: arch metadata: %w", path, err)
	}
	return s, nil
}

type layerSummary struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	OutputShape []int  `json:"output_shape"`
	Params      int64  `json:"params"`
	MACs        int64  `json:"macs"`
}

func writeModelJSON(w io.Writer, g *arch.Graph) error {
	out := struct {
		Layers      []layerSummary `json:"layers"`
		ParamsTotal int64          `json:"params_total"`
		MACsTotal   int64          `json:"macs_total"`
	}{ParamsTotal: g.Params(), MACsTotal: g.MACs()}
	for _, n := range g.Nodes {
		out.Layers = append(out.Layers, layerSummary{Name: n.Name, Type: n.Type, OutputShape: n.Out, Params: n.Params(), MACs: n.MACs()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// writeModelYAML prints a model section: each layer as a flow mapping with the
// keys that differ from its type's defaults, then its shape, parameters and
// MACs as a comment.
func writeModelYAML(w io.Writer, g *arch.Graph) error {
	var b strings.Builder
	fmt.Fprintf(&b, "model:\n  input: %s\n  classes: %d\n  layers:\n", g.Input, g.Classes)
	rows := make([]string, len(g.Nodes))
	width := 0
	for i, n := range g.Nodes {
		row, err := layerYAML(n)
		if err != nil {
			return err
		}
		rows[i] = row
		width = max(width, len(row))
	}
	for i, n := range g.Nodes {
		fmt.Fprintf(&b, "    - %-*s  # %s", width, rows[i], n.Out)
		if p := n.Params(); p > 0 {
			fmt.Fprintf(&b, ", %s params", thousands(p))
		}
		if m := n.MACs(); m > 0 {
			fmt.Fprintf(&b, ", %s MACs", thousands(m))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "# %d layers, %s parameters, %s MACs per sample\n", len(g.Nodes), thousands(g.Params()), thousands(g.MACs()))
	_, err := io.WriteString(w, b.String())
	return err
}

// layerYAML is {name: ..., type: ..., from: ..., key: value} with the keys in
// the order the layer type declares them, defaults left out.
func layerYAML(n *arch.Node) (string, error) {
	var parts []string
	if n.Name != "" {
		parts = append(parts, "name: "+n.Name)
	}
	parts = append(parts, "type: "+n.Type)
	switch len(n.From) {
	case 0:
	case 1:
		parts = append(parts, "from: "+n.From[0])
	default:
		parts = append(parts, "from: ["+strings.Join(n.From, ", ")+"]")
	}
	t, _ := arch.LayerTypeOf(n.Type)
	keys, err := orderedJSON(n.Config)
	if err != nil {
		return "", err
	}
	defaults, err := orderedJSON(t.New())
	if err != nil {
		return "", err
	}
	def := map[string]string{}
	for _, kv := range defaults {
		def[kv[0]] = kv[1]
	}
	for _, kv := range keys {
		if d, ok := def[kv[0]]; ok && d == kv[1] {
			continue
		}
		parts = append(parts, kv[0]+": "+strings.ReplaceAll(kv[1], ",", ", "))
	}
	return "{" + strings.Join(parts, ", ") + "}", nil
}

// orderedJSON is a config's keys and JSON values in declaration order.
func orderedJSON(v any) ([][2]string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	var out [][2]string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		out = append(out, [2]string{k.(string), string(raw)})
	}
	return out, nil
}

// thousands writes 1234567 as 1,234,567.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
