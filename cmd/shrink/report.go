package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/shrink-ml/shrink/report"
)

func (a *app) reportCommand() *cobra.Command {
	var latency bool
	cmd := &cobra.Command{
		Use:   "report RUN_DIR",
		Short: "Write report.md and PNG plots of a run into its folder",
		Long: `Write RUN_DIR/report.md: every stage side by side (accuracy, parameters,
sparsity, checkpoint and compressed sizes, compression ratio, seconds), per-layer
weights kept, bits and rank, and the recipe and seed that produced them. Beside
it, PNG plots: frontier.png (test accuracy against compressed size, the Pareto
frontier drawn) and, when some stage pruned, quantized or factored a layer,
layers-sparsity.png, layers-bits.png, layers-rank.png.
With --latency it also times each stage's checkpoint at batch 1 on this machine
(about a second each, as shrink bench does) and adds a latency column: timings
vary, so the report is reproducible byte for byte only without it.`,
		Example: "  shrink report runs/lenet300-compress",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := report.WriteWith(args[0], report.Options{Latency: latencyTime(latency)})
			if err != nil {
				return err
			}
			for _, f := range res.Files {
				fmt.Fprintln(a.stdout, f)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&latency, "latency", false, "measure each stage's batch-1 inference latency on this machine")
	return cmd
}

func latencyTime(on bool) time.Duration {
	if on {
		return time.Second
	}
	return 0
}
