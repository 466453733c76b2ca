package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shrink-ml/shrink/report"
)

func (a *app) reportCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "report RUN_DIR",
		Short: "Write report.md and PNG plots of a run into its folder",
		Long: `Write RUN_DIR/report.md: every stage side by side (accuracy, parameters,
sparsity, checkpoint and compressed sizes, compression ratio, seconds), per-layer
weights kept, bits and rank, and the recipe and seed that produced them. Beside
it, PNG plots: frontier.png (test accuracy against compressed size, the Pareto
frontier drawn) and, when some stage pruned, quantized or factored a layer,
layers-sparsity.png, layers-bits.png, layers-rank.png.`,
		Example: "  shrink report runs/lenet300-compress",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := report.Write(args[0])
			if err != nil {
				return err
			}
			for _, f := range res.Files {
				fmt.Fprintln(a.stdout, f)
			}
			return nil
		},
	}
}
