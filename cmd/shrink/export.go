package main

import (
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/compress"
	"github.com/shrink-ml/shrink/export"
	"github.com/shrink-ml/shrink/model"
)

func (a *app) exportCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "export CHECKPOINT --format dense|compressed OUT",
		Short: "Write a checkpoint as plain F32 safetensors, or compressed to its deployed size",
		Long: `Write the model in CHECKPOINT (safetensors, or a compressed file) to OUT.

--format compressed: the smallest lossless form, whose size is the model's real
deployed size: pruned tensors as a bitmask or gaps plus their kept values,
quantized integers at their bit width, floats as F32 (F16 only where exact), all
entropy-coded with zstd. 'shrink eval' and 'shrink inspect' read it; it decodes
to exactly CHECKPOINT. Layout: docs/COMPRESSED-FORMAT.md.

--format dense: plain F32 safetensors (a PyTorch state_dict): quantized weights
as the values their integers stand for, factored layers as their two factors,
pruned weights as exact zeros. Activation quantization, which a float model
cannot hold, is dropped with a warning.`,
		Example: `  shrink export runs/lenet/qat/model.safetensors --format compressed lenet.shkz
  shrink export lenet.shkz --format dense lenet-f32.safetensors`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, out := args[0], args[1]
			if format == "" {
				return usagef("--format must be dense or compressed (none given): dense is plain F32 safetensors, compressed the smallest lossless form")
			}
			f, _, err := compress.ReadFile(in)
			if err != nil {
				return err
			}
			if format == "compressed" {
				n, err := compress.WriteFile(out, f)
				if err != nil {
					return err // names out
				}
				a.exportSummary(out, int64(n), f, true)
				return nil
			}
			m, err := model.FromFile(f, nil)
			if err != nil {
				return fmt.Errorf("%s: %w (dense export needs a shrink checkpoint, with its arch metadata)", in, err)
			}
			df, dropped, err := export.Dense(m, f.Metadata)
			if err != nil {
				return err
			}
			for _, l := range dropped {
				a.log.Warn().Str("layer", l).Msg("activation quantization dropped: a float model has float activations, so its outputs differ slightly (the compressed format keeps it)")
			}
			if _, err := checkpoint.WriteFile(out, df); err != nil {
				return err // names out
			}
			size, err := fileSize(out)
			if err != nil {
				return err
			}
			a.exportSummary(out, size, df, false)
			return nil
		},
	}
	enumVar(cmd.Flags(), &format, "format", "", []string{"dense", "compressed"}, "dense (plain F32 safetensors) or compressed (the smallest lossless form)")
	return cmd
}

// exportSummary prints what was written and, for a compressed file, how it
// compares with the dense F32 model: the recipe's original model, as the
// stage's compression_ratio does, when the checkpoint records its size (shrink
// writes dense_f32_bytes into every stage's checkpoint); else the dense F32
// form of the checkpoint's own architecture, said so (a slimmed or student
// model is smaller than the original it came from).
func (a *app) exportSummary(out string, size int64, f *checkpoint.File, compressed bool) {
	line := fmt.Sprintf("wrote %s: %d bytes (%s)", out, size, humanBytes(size))
	if compressed {
		if dense, err := strconv.ParseInt(f.Metadata["dense_f32_bytes"], 10, 64); err == nil && dense > 0 {
			line += fmt.Sprintf(", %.1fx smaller than the recipe's model in dense F32 (%s; compression_ratio in metrics.json)", float64(dense)/float64(size), humanBytes(dense))
		} else if m, err := model.FromFile(f, nil); err == nil {
			dense := export.DenseF32Bytes(m.Spec)
			line += fmt.Sprintf(", %.1fx smaller than its own architecture (%s) in dense F32 (%s)", float64(dense)/float64(size), m.Spec.Arch, humanBytes(dense))
		}
	}
	fmt.Fprintln(a.stdout, line)
}

// printCompressed describes a compressed file's sections (inspect).
func (a *app) printCompressed(info *compress.Info) {
	if info == nil {
		return
	}
	fmt.Fprintf(a.stdout, "compressed (shrink format v%d): %d bytes on disk, %d before entropy coding\n", info.Version, info.FileBytes, info.BodyBytes)
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tSTORED\tENCODING")
	for _, s := range info.Sections {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", printable(s.Name), s.Bytes, s.Encoding)
	}
	tw.Flush()
}

func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
