package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/compress"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
	"github.com/shrink-ml/shrink/schemas"
)

// runFlags are the flags run and plan share.
type runFlags struct {
	runDir, cacheDir string
	sets             []string
	force            bool
	from, only       string
	jobs             int
}

func (f *runFlags) register(cmd *cobra.Command, full bool) {
	fs := cmd.Flags()
	fs.StringVar(&f.runDir, "run-dir", "", "the run folder (default runs/<recipe name>)")
	fs.StringArrayVar(&f.sets, "set", nil, "override a recipe key, e.g. --set stages.prune.amount=0.5 (repeatable; values are YAML)")
	fs.StringVar(&f.cacheDir, "cache-dir", os.Getenv("SHRINK_CACHE_DIR"), "where stage results are stored by key, shareable between runs: a folder or s3://BUCKET/PREFIX (default $SHRINK_CACHE_DIR, else <run-dir>/.shrink/store)")
	fs.BoolVar(&f.force, "force", false, "run every stage, even those whose results are stored")
	fs.StringVar(&f.from, "from", "", "run this stage and every stage after it, even if stored")
	fs.StringVar(&f.only, "only", "", "run just this stage; its inputs must already be stored")
	if full {
		fs.Var(jobsFlag{&f.jobs}, "jobs", jobsUsage)
	}
}

// plan loads a recipe and plans it with the command's run flags (plan, graph).
func (a *app) plan(path string, f *runFlags) (*pipeline.Recipe, []*runner.PlanItem, error) {
	recipe, err := a.loadRecipe(path, f.sets)
	if err != nil {
		return nil, nil, err
	}
	items, err := a.newRunner(recipe, f).Plan()
	return recipe, items, err
}

func (a *app) newRunner(recipe *pipeline.Recipe, f *runFlags) *runner.Runner {
	opt := runner.Options{RunDir: f.runDir, CacheDir: f.cacheDir, Force: f.force, From: f.from, Only: f.only,
		Jobs: a.jobs(recipe, f.jobs), Sets: f.sets, Log: a.log, LogOutput: a.logOut}
	if a.bar != nil && a.bar.enabled {
		opt.Progress = a.bar.sink
	}
	return runner.New(a.registry, recipe, opt)
}

func (a *app) runCommand() *cobra.Command {
	var f runFlags
	var replay string
	cmd := &cobra.Command{
		Use:   "run RECIPE",
		Short: "Run a recipe's stages, reusing every stored result",
		Long: `Run the recipe's DAG: each stage in dependency order, writing
<run-dir>/<stage>/model.safetensors and metrics.json, and run.json for the run.

A stage whose key (its config, its inputs' checksums, the data, the seed) is
stored already is not run again: rerunning an unchanged recipe runs nothing,
and changing one stage reruns it and what depends on it, never what comes before.
Training saves its state after every epoch, so an interrupted run resumes where it
stopped. Exit status: 0 success, 1 a stage failed, 2 an invalid recipe (nothing ran).

--replay RUN.json reruns exactly what a run.json recorded (its resolved recipe,
overrides included) in a fresh run folder, and checks every checkpoint's sha256
against the recorded one.`,
		Example: `  shrink run recipes/quickstart.yaml
  shrink run recipes/lottery-ticket.yaml --set stages.lottery.rounds=3
  shrink run recipes/prune-l1.yaml --from prune
  shrink run --replay runs/quickstart/run.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if replay != "" {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var recipe *pipeline.Recipe
			var recorded *runner.Manifest
			var err error
			if replay != "" {
				if len(f.sets) > 0 {
					return usagef("--replay runs the recorded recipe as it was: drop --set")
				}
				if recipe, recorded, err = a.replayRecipe(replay); err != nil {
					return err
				}
				if f.runDir == "" {
					f.runDir = filepath.Join("runs", recipe.Name+"-replay")
				}
				f.force = true
			} else if recipe, err = a.loadRecipe(args[0], f.sets); err != nil {
				return err
			}
			r := a.newRunner(recipe, &f)
			man, err := r.Run(cmd.Context())
			a.bar.clear()
			if man != nil {
				a.summarize(man, r.RunDir())
			}
			if errors.Is(err, runner.ErrStageFailed) {
				if man != nil && man.Status == "interrupted" {
					return errInterrupted
				}
				return errAlreadyReported
			}
			if err != nil {
				return err
			}
			if recorded != nil {
				return a.checkReplay(recorded, man)
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&replay, "replay", "", "rerun exactly the run a run.json records, and check its checkpoints' digests")
	return cmd
}

// summarize prints the run's outcome per stage on stdout. SIZE is the
// checkpoint file; COMPRESSED its compressed export, the deployed size, which
// is where pruning and quantization show (a pruned checkpoint stores its zeros).
func (a *app) summarize(man *runner.Manifest, runDir string) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tSTATUS\tACCURACY\tPARAMS\tNONZERO\tSIZE\tCOMPRESSED\tSECONDS")
	for _, s := range man.Stages {
		acc, params, nz, size, comp := "-", "-", "-", "-", "-"
		if v, ok := s.Metrics["accuracy"].(float64); ok {
			acc = fmt.Sprintf("%.4f", v)
		}
		count := func(key string) string {
			if v, ok := config.AsFloat(s.Metrics[key]); ok {
				return strconv.FormatInt(int64(v), 10) // not 1.316868e+06
			}
			return "-"
		}
		params, nz = count("params_total"), count("params_nonzero")
		if v, ok := config.AsFloat(s.Metrics["size_bytes"]); ok {
			size = humanBytes(int64(v))
		}
		if v, ok := config.AsFloat(s.Metrics["compressed_bytes"]); ok {
			comp = humanBytes(int64(v))
			if r, ok := config.AsFloat(s.Metrics["compression_ratio"]); ok && r > 0 {
				comp += fmt.Sprintf(" (%.1fx)", r)
			}
		}
		status := s.Status
		if s.Error != "" {
			status += ": " + s.Error
		} else if s.Status == "skipped" || s.Status == "interrupted" {
			status += " (" + s.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\n", s.ID, status, acc, params, nz, size, comp, s.Seconds)
	}
	tw.Flush()
	fmt.Fprintf(a.stdout, "run folder: %s (%s)\n", runDir, man.Status)
}

// humanBytes writes a size in SI units (1 KB = 1000 bytes), as report.md does.
func humanBytes(n int64) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%.2f MB", float64(n)/1e6)
	case n >= 1000:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func (a *app) planCommand() *cobra.Command {
	var f runFlags
	var format string
	cmd := &cobra.Command{
		Use:   "plan RECIPE",
		Short: "Show the stages in run order, and which would run and why",
		Long: `Print every stage of the expanded DAG in run order with 'cached' (its stored
result will be reused) or 'run' and the reason: first run, which keys changed,
which input changed, a missing or corrupt checkpoint, or a flag. Nothing is run.
A stage after one that runs is shown as 'run': plan assumes its input changes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, items, err := a.plan(args[0], &f)
			if err != nil {
				return err
			}
			if format == "json" {
				type row struct {
					ID     string   `json:"id"`
					Type   string   `json:"type"`
					Status string   `json:"status"`
					Reason string   `json:"reason,omitempty"`
					Key    string   `json:"key,omitempty"`
					Needs  []string `json:"needs,omitempty"`
				}
				var rows []row
				for _, it := range items {
					rows = append(rows, row{it.Stage.ID, it.Stage.Type, it.Status, it.Reason, it.Key, it.Stage.Deps()})
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STAGE\tTYPE\tSTATUS\tWHY")
			for _, it := range items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Stage.ID, it.Stage.Type, it.Status, it.Reason)
			}
			return tw.Flush()
		},
	}
	f.register(cmd, false)
	enumVar(cmd.Flags(), &format, "format", "text", []string{"text", "json"}, "output format")
	return cmd
}

func (a *app) validateCommand() *cobra.Command {
	var sets []string
	cmd := &cobra.Command{
		Use:   "validate RECIPE...",
		Short: "Check recipes against the schema and the DAG rules",
		Long: `Check each recipe without running anything: the JSON Schema (unknown keys,
wrong types, out-of-range values, unknown stage types), every stage's own rules,
stage references and cycles; then the files it names, read as a run would: that
model.checkpoint is a checkpoint of the model section's architecture, that a
teacher_checkpoint is readable, that IDX data fits the model, that
$SHRINK_MNIST_DIR holds MNIST. Every problem is printed as FILE:LINE:COL:
message, sorted, all at once. Exit status 2 if any recipe has a problem.`,
		Example: "  shrink validate recipes/*.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			problems, bad := 0, 0
			for _, path := range args {
				r, err := a.loadRecipe(path, sets)
				if err == nil {
					// What a run would reject that the recipe alone does not show:
					// the files it names, read.
					if ds := runner.Check(r); len(ds) > 0 {
						err = ds.Sort()
					}
				}
				var ds pipeline.Diagnostics
				switch {
				case errors.As(err, &ds):
					fmt.Fprintln(a.stdout, ds.Error())
					problems += len(ds)
					bad++
				case err != nil && strings.Contains(err.Error(), path):
					fmt.Fprintln(a.stdout, err)
					problems++
					bad++
				case err != nil:
					fmt.Fprintf(a.stdout, "%s: %v\n", path, err)
					problems++
					bad++
				}
			}
			if bad > 0 {
				fmt.Fprintf(a.stderr, "%d problem(s) in %d of %d recipe(s)\n", problems, bad, len(args))
				return validateFailed{}
			}
			fmt.Fprintf(a.stderr, "%d recipe(s) valid\n", len(args))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a recipe key before validating (repeatable)")
	return cmd
}

// validateFailed means validate printed its problems (exit 2).
type validateFailed struct{}

func (validateFailed) Error() string { return "invalid recipes" }

func (a *app) inspectCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect CHECKPOINT",
		Short: "Print a checkpoint's tensors and metadata",
		Long: `Print one line per tensor (name, dtype, shape, sparsity, bytes) and the
checkpoint's metadata (format, arch, compression, stage, recipe digest). A
compressed file (shrink export --format compressed) shows the tensors it
decodes to, then how each is stored.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, info, err := compress.ReadFile(args[0]) // safetensors or compressed
			if err != nil {
				return err
			}
			st, _ := os.Stat(args[0])
			type row struct {
				Name     string  `json:"name"`
				DType    string  `json:"dtype"`
				Shape    []int   `json:"shape"`
				Sparsity float64 `json:"sparsity"`
				Bytes    int     `json:"bytes"`
			}
			var rows []row
			for _, t := range f.Tensors {
				rows = append(rows, row{t.Name, string(t.DType), t.Shape, sparsity(&t), len(t.Data)})
			}
			if format == "json" {
				// Metadata values that hold JSON (arch, compression) nest as JSON,
				// not as strings of escaped JSON.
				meta := map[string]any{}
				for k, v := range f.Metadata {
					if t := strings.TrimSpace(v); (strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[")) && json.Valid([]byte(t)) {
						meta[k] = json.RawMessage(t)
					} else {
						meta[k] = v
					}
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"file": args[0], "bytes": st.Size(), "tensors": rows, "metadata": meta, "compressed": info})
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDTYPE\tSHAPE\tSPARSITY\tBYTES")
			total := 0
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%.4f\t%d\n", printable(r.Name), r.DType, r.Shape, r.Sparsity, r.Bytes)
				total += r.Bytes
			}
			tw.Flush()
			fmt.Fprintf(a.stdout, "%d tensors, %d bytes of data, %d bytes on disk\n", len(rows), total, st.Size())
			keys := make([]string, 0, len(f.Metadata))
			for k := range f.Metadata {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			a.printCompressed(info)
			fmt.Fprintln(a.stdout, "metadata:")
			for _, k := range keys {
				fmt.Fprintf(a.stdout, "  %s: %s\n", printable(k), printable(f.Metadata[k]))
			}
			return nil
		},
	}
	enumVar(cmd.Flags(), &format, "format", "text", []string{"text", "json"}, "output format")
	return cmd
}

// printable shows a name or value from a file as it is, unless it holds
// control characters (a tab, an escape sequence that would reach the
// terminal) or invalid UTF-8: then quoted, with those escaped.
func printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || (!unicode.IsGraphic(r) && r != ' ') {
			return strconv.Quote(s)
		}
	}
	return s
}

// sparsity is the share of exact zeros (for integer tensors, of zero values).
func sparsity(t *checkpoint.Tensor) float64 {
	n := t.NumElements()
	if n == 0 {
		return 0
	}
	zeros := 0
	switch t.DType {
	case checkpoint.DTypeF32:
		v, _ := t.Float32s()
		for _, x := range v {
			if x == 0 {
				zeros++
			}
		}
	default:
		size := t.DType.Size()
		for i := 0; i+size <= len(t.Data); i += size {
			zero := true
			for _, b := range t.Data[i : i+size] {
				if b != 0 {
					zero = false
					break
				}
			}
			if zero {
				zeros++
			}
		}
	}
	return float64(zeros) / float64(n)
}

func (a *app) evalCommand() *cobra.Command {
	var recipePath, format, stage string
	var sets []string
	var reference bool
	cmd := &cobra.Command{
		Use:   "eval CHECKPOINT --recipe RECIPE",
		Short: "Measure a checkpoint's accuracy and loss on the recipe's test data",
		Long: `Evaluate any checkpoint (made by shrink, or a PyTorch state_dict saved with
safetensors) on the recipe's test split: quantized layers as their integers stand
for, activations quantized as the checkpoint says. The recipe supplies the data
and, for checkpoints without shrink's metadata, the architecture; --stage takes
the data of a stage with its own data key instead (its keys merged over the
recipe's data section). Batches are data.eval_batch_size when the recipe (or
the stage's data key) sets it, else data.batch_size (as in predict). A
checkpoint that does not fit the data (input size, classes) is an error, not a
number. Layers run on the kernels shrink bench lists (int8, sparse
where this machine's sparse kernels win, dense); --reference computes as before (dense float).
With --format json, one object {"accuracy", "loss", "samples"} is printed.`,
		Example: "  shrink eval runs/quickstart/train/model.safetensors --recipe recipes/quickstart.yaml --format json\n" +
			"  shrink eval runs/lora-transfer/qlora/model.safetensors --recipe recipes/lora-transfer.yaml --stage qlora",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.prepareEvaluation(args[0], recipePath, stage, sets, "test", reference)
			if err != nil {
				return err
			}
			runner.UseAllCores()
			logits, err := e.logits(cmd.Context())
			if err != nil {
				return err
			}
			res := model.Score(logits, e.split.Y, e.model.Spec.Classes, e.batch)
			if format == "json" {
				if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
					// JSON has no NaN: say why rather than json's "unsupported value".
					return fmt.Errorf("%s: the loss over %d samples is %v: the model's outputs are not finite numbers (float32 overflowed), which JSON cannot hold; --format text prints them",
						args[0], res.Samples, res.Loss)
				}
				return json.NewEncoder(a.stdout).Encode(res)
			}
			fmt.Fprintf(a.stdout, "accuracy %.4f  loss %.4f  samples %d\n", res.Accuracy, res.Loss, res.Samples)
			return nil
		},
	}
	cmd.Flags().StringVar(&recipePath, "recipe", "", "the recipe whose data (and model section) to use")
	cmd.Flags().StringVar(&stage, "stage", "", "evaluate on this stage's data (its data key over the recipe's)")
	enumVar(cmd.Flags(), &format, "format", "text", []string{"text", "json"}, "output format")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a recipe key (repeatable)")
	cmd.Flags().BoolVar(&reference, "reference", false, referenceFlag)
	return cmd
}

func (a *app) schemaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the recipe JSON Schema",
		Long: `Print the JSON Schema (2020-12) of recipes, as in schemas/recipe.schema.json.
Editors use it for completion: start a recipe with
  # yaml-language-server: $schema=../schemas/recipe.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := a.stdout.Write(schemas.Recipe)
			return err
		},
	}
}
