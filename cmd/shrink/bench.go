package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/compress"
	"github.com/shrink-ml/shrink/export"
	"github.com/shrink-ml/shrink/infer"
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/qgemm"
	"github.com/shrink-ml/shrink/internal/sparse"
)

// benchResult is shrink bench's JSON output.
type benchResult struct {
	Checkpoint string        `json:"checkpoint"`
	Threads    int           `json:"threads"`
	Kernels    kernelImpls   `json:"implementations"`
	Latency    infer.Timing  `json:"latency"`
	Throughput infer.Timing  `json:"throughput"`
	Layers     []benchLayers `json:"layers"`
}

type kernelImpls struct {
	Int8   string `json:"int8"`
	Sparse string `json:"sparse"`
}

// benchLayers is one layer's kernels at batch 1 and at the throughput batch.
type benchLayers struct {
	Name    string  `json:"name"`
	Type    string  `json:"type"`
	Density float64 `json:"density,omitempty"`
	Batch1  string  `json:"kernel_batch1,omitempty"`
	BatchN  string  `json:"kernel_batchN,omitempty"`
}

func (a *app) benchCommand() *cobra.Command {
	var recipePath, format string
	var batch, threads int
	var dur time.Duration
	var reference bool
	var sets []string
	cmd := &cobra.Command{
		Use:   "bench CHECKPOINT [--batch N]",
		Short: "Measure a checkpoint's inference latency and throughput on this machine",
		Long: `Time CHECKPOINT's inference as package infer runs it (shrink eval and predict
use the same): latency at batch 1 and throughput at --batch N, median and 90th
percentile over about --time of calls each, one call at a time, on seeded random
inputs. It lists the kernels each layer runs on at both sizes: int8 (quantized
layers, static or dynamic, exact integer products), sparse (pruned float linear
layers below the density this machine's sparse kernels beat dense ones at; see
docs/PERFORMANCE.md) or dense float. Compare stages of a run by benching each stage's model.

CHECKPOINT is any stage's output, a compressed export or an ONNX file; a plain
PyTorch state_dict needs --recipe for its architecture. Timings are of this
machine at this moment: other work running meanwhile slows them.`,
		Example: `  shrink bench runs/deep-compression-lenet300/qat/model.safetensors --batch 256
  shrink bench runs/quickstart/train/model.safetensors --format json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch < 1 {
				return usagef("--batch must be at least 1, not %d", batch)
			}
			if threads < 1 {
				return usagef("--threads must be at least 1, not %d", threads)
			}
			var spec *arch.Spec
			if recipePath != "" {
				recipe, err := a.loadRecipe(recipePath, sets)
				if err != nil {
					return err
				}
				spec = &recipe.Model
			}
			m, err := export.LoadModel(args[0], spec)
			if err != nil {
				if spec == nil && !hasArch(args[0]) {
					return usagef("%s has no arch metadata (a plain PyTorch state_dict?): give --recipe RECIPE, whose model section is its architecture", args[0])
				}
				return recipeAsCheckpoint(args[0], err)
			}
			gemm.SetThreads(threads)
			r, err := infer.New(m, infer.Options{MaxBatch: max(batch, 1), Sizes: 2, Reference: reference})
			if err != nil {
				return err
			}
			res := benchResult{Checkpoint: args[0], Threads: threads, Kernels: kernelImpls{Int8: qgemm.Impl(), Sparse: sparse.Impl()}}
			if res.Latency, err = r.Measure(1, dur); err != nil {
				return err
			}
			if res.Throughput, err = r.Measure(batch, dur); err != nil {
				return err
			}
			l1, ln := r.Layers(1), r.Layers(batch)
			for i, l := range l1 {
				res.Layers = append(res.Layers, benchLayers{Name: l.Name, Type: l.Type, Density: l.Density, Batch1: l.Kernel, BatchN: ln[i].Kernel})
			}
			if format == "json" {
				return json.NewEncoder(a.stdout).Encode(res)
			}
			printBench(a.stdout, res)
			return nil
		},
	}
	cmd.Flags().IntVar(&batch, "batch", 256, "the batch size of the throughput measurement")
	cmd.Flags().IntVar(&threads, "threads", 1, "threads of the dense matrix products (the int8 and sparse kernels use one)")
	cmd.Flags().DurationVar(&dur, "time", 2*time.Second, "how long to time each batch size")
	cmd.Flags().BoolVar(&reference, "reference", false, referenceFlag)
	cmd.Flags().StringVar(&recipePath, "recipe", "", "a recipe whose model section is the architecture of a plain PyTorch state_dict")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a recipe key (repeatable)")
	enumVar(cmd.Flags(), &format, "format", "text", []string{"text", "json"}, "output format")
	return cmd
}

// hasArch is false only for a readable checkpoint without shrink's arch
// metadata (a plain state_dict), whose architecture only a recipe's model
// section gives. It reads the file again, on the error path only.
func hasArch(path string) bool {
	if strings.EqualFold(filepath.Ext(path), ".onnx") {
		return true // the import is its architecture
	}
	f, _, err := compress.ReadFile(path)
	if err != nil {
		return true // unreadable: the load's own error says why
	}
	_, ok := f.Metadata["arch"]
	return ok
}

func printBench(w io.Writer, r benchResult) {
	fmt.Fprintf(w, "%s (%d thread(s); int8 kernels %s, sparse kernels %s)\n", r.Checkpoint, r.Threads, r.Kernels.Int8, r.Kernels.Sparse)
	fmt.Fprintf(w, "latency, batch 1:     median %s  p90 %s  (%d calls)\n", seconds(r.Latency.Median), seconds(r.Latency.P90), r.Latency.Calls)
	fmt.Fprintf(w, "throughput, batch %d: %.0f samples/s  (median %s per batch, p90 %s, %d calls)\n",
		r.Throughput.Batch, r.Throughput.Throughput, seconds(r.Throughput.Median), seconds(r.Throughput.P90), r.Throughput.Calls)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "layer\ttype\tdensity\tbatch 1\tbatch %d\n", r.Throughput.Batch)
	for _, l := range r.Layers {
		if l.Batch1 == "" {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f%%\t%s\t%s\n", l.Name, l.Type, 100*l.Density, l.Batch1, l.BatchN)
	}
	tw.Flush()
}

// seconds prints a latency in µs or ms.
func seconds(s float64) string {
	if s < 1e-3 {
		return fmt.Sprintf("%.1f µs", s*1e6)
	}
	return fmt.Sprintf("%.3f ms", s*1e3)
}
