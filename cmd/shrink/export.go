package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/compress"
	"github.com/shrink-ml/shrink/export"
	"github.com/shrink-ml/shrink/export/onnxexport"
	"github.com/shrink-ml/shrink/model"
)

func (a *app) exportCommand() *cobra.Command {
	var format string
	var int4, floatBias, intBias, ortDynamic bool
	cmd := &cobra.Command{
		Use:   "export CHECKPOINT --format dense|compressed|onnx OUT",
		Short: "Write a checkpoint as plain F32 safetensors, compressed to its deployed size, or as ONNX",
		Long: `Write the model in CHECKPOINT (safetensors, or a compressed file) to OUT.

--format compressed: the smallest lossless form, whose size is the model's real
deployed size: pruned tensors as a bitmask or gaps plus their kept values,
quantized integers at their bit width, floats as F32 (F16 only where exact), all
entropy-coded with zstd. 'shrink eval' and 'shrink inspect' read it; it decodes
to exactly CHECKPOINT. Layout: docs/COMPRESSED-FORMAT.md.

--format dense: plain F32 safetensors (a PyTorch state_dict): quantized weights
as the values their integers stand for, factored layers as their two factors,
pruned weights as exact zeros, LoRA adapters merged into their weights (NF4
bases dequantized; the onnx export merges them too). Activation quantization, which a float model
cannot hold, is dropped with a warning.

--format onnx: an ONNX model (opset 13) that onnxruntime runs to the logits
shrink computes: input "input" [N, ...], output "logits" [N, classes].
Quantized layers are in the QDQ form of onnxruntime's quantizer (INT8 weights
through DequantizeLinear; calibrated inputs as QuantizeLinear/DequantizeLinear;
dynamic ones as DynamicQuantizeLinear with MatMulInteger or ConvInteger).
Weights of fewer than 8 bits are INT8 values on their grid, or INT4 with
--int4 (opset 21). onnxruntime rounds the float bias of a layer it runs on
integer kernels (QLinearConv, QGemm) to INT32, which moves a few activations
by a step of the next layer's grid: the export leaves a bias there only while
the expected moved activations per sample, summed over those layers, stay
within a budget of 1 (every shipped MLP and LeNet-5 keeps its integer
kernels), and adds the others in float with their own Add (exact, those layers
then run in float); it logs which and why. --float-bias keeps every bias
apart (shrink's logits to float rounding), --int-bias none that onnxruntime
can round (every integer kernel; deep networks drift).
An LSTM is ONNX's LSTM operator, or onnxruntime's DynamicQuantizeLSTM when
dynamically quantized. PyTorch's reduce_range input grid (0..127), which
onnxruntime's dynamic operators lack, is computed in the graph (an LSTM as a
Scan over its steps) to match shrink; --ort-dynamic uses those operators on
their own grid (0..255) instead: faster, not exact. The model's metadata_props carry shrink.recipe_sha256,
shrink.stage and shrink.compression. Layout: docs/ONNX.md.`,
		Example: `  shrink export runs/lenet/qat/model.safetensors --format compressed lenet.shkz
  shrink export lenet.shkz --format dense lenet-f32.safetensors
  shrink export runs/quickstart/train/model.safetensors --format onnx mlp.onnx`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, out := args[0], args[1]
			if format == "" {
				return usagef("--format must be dense, compressed or onnx (none given): dense is plain F32 safetensors, compressed the smallest lossless form, onnx a model onnxruntime runs")
			}
			if (int4 || floatBias || intBias || ortDynamic) && format != "onnx" {
				return usagef("--int4, --float-bias, --int-bias and --ort-dynamic apply to --format onnx only")
			}
			if floatBias && intBias {
				return usagef("--float-bias (every bias apart, exact) and --int-bias (every bias onnxruntime can round to INT32) exclude each other: give one")
			}
			if strings.EqualFold(filepath.Ext(in), ".onnx") {
				// bench, predict and model read ONNX files; export needs a
				// checkpoint's tensors and metadata, which an import lacks.
				return usagef("%s is an ONNX file, and export reads shrink checkpoints (safetensors or compressed): a recipe with model: {onnx: %s} makes them from it; predict, bench and model read it as it is", in, in)
			}
			f, _, err := compress.ReadFile(in)
			if err != nil {
				return recipeAsCheckpoint(in, err)
			}
			if format == "compressed" {
				n, err := compress.WriteFile(out, f)
				if err != nil {
					return err // names out
				}
				a.exportSummary(out, int64(n), f, true)
				return nil
			}
			if _, ok := f.Metadata["arch"]; !ok {
				// model.FromFile would ask for the architecture, which export has no flag for.
				return usagef("%s has no arch metadata (a plain PyTorch state_dict?): %s export needs a shrink checkpoint; make one by running a recipe whose model section describes it with checkpoint: %s (its stages' model.safetensors export)", in, format, in)
			}
			m, err := model.FromFile(f, nil)
			if err != nil {
				return fmt.Errorf("%s: %w (%s export needs a shrink checkpoint, with its arch metadata)", in, err, format)
			}
			if format == "onnx" {
				return a.exportONNX(m, out, onnxexport.Options{Int4: int4, FloatBias: floatBias, IntBias: intBias, ORTDynamic: ortDynamic, Metadata: f.Metadata})
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
	enumVar(cmd.Flags(), &format, "format", "", []string{"dense", "compressed", "onnx"}, "dense (plain F32 safetensors), compressed (the smallest lossless form) or onnx (for onnxruntime)")
	cmd.Flags().BoolVar(&floatBias, "float-bias", false, "onnx: add quantized layers' biases in float, so onnxruntime matches shrink to float rounding (it rounds a quantized Conv's or Gemm's bias to INT32), at the cost of its integer kernels")
	cmd.Flags().BoolVar(&intBias, "int-bias", false, "onnx: leave every bias onnxruntime can round to INT32 in its Conv or Gemm node, for its integer kernels everywhere (the default does so within a budget of moved activations): fastest, but deep networks' logits drift from shrink's")
	cmd.Flags().BoolVar(&int4, "int4", false, "onnx: store weights of 4 bits and fewer as INT4 (opset 21, onnxruntime 1.17+) instead of INT8 values on the 4-bit grid")
	cmd.Flags().BoolVar(&ortDynamic, "ort-dynamic", false, "onnx: quantize reduce_range inputs on onnxruntime's own grid (DynamicQuantizeLinear, DynamicQuantizeLSTM): its integer kernels' speed, logits off by the grids' rounding")
	return cmd
}

// exportONNX writes m as an ONNX model and tells what the file stores
// differently from the checkpoint.
func (a *app) exportONNX(m *model.Model, out string, opt onnxexport.Options) error {
	res, err := onnxexport.Export(m, opt)
	if err != nil {
		return err
	}
	if err := res.Model.WriteFile(out); err != nil {
		return err // names out
	}
	for _, n := range res.Notes {
		a.log.Info().Msg(n)
	}
	size, err := fileSize(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "wrote %s: %d bytes (%s), ONNX opset %d\n", out, size, humanBytes(size), res.Model.Opset(""))
	return nil
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
			dense, _ := export.DenseF32Bytes(m.Spec)
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
