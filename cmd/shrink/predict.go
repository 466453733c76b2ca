package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/export"
	"github.com/shrink-ml/shrink/infer"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
)

// evaluation is a checkpoint run over one split of a recipe's data.
type evaluation struct {
	recipe    *pipeline.Recipe
	model     *model.Model
	split     *data.Split
	batch     int
	reference bool // model.Logits' computation
}

// logits runs the checkpoint over the split with package infer: each layer
// on the kernels its form allows (int8, sparse, dense), in the recipe's
// evaluation batches.
func (e *evaluation) logits(ctx context.Context) ([]float32, error) {
	r, err := infer.New(e.model, infer.Options{MaxBatch: max(e.batch, 1024), Sizes: 1, Reference: e.reference})
	if err != nil {
		return nil, err
	}
	return r.Logits(ctx, e.split, e.batch)
}

// recipeAsCheckpoint adds what to do to a checkpoint's read error when the
// file is a recipe, an easy slip with --recipe beside it: the error alone
// only says the file's first bytes make no safetensors header.
func recipeAsCheckpoint(path string, err error) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return fmt.Errorf("%w (a recipe? CHECKPOINT is a model file: a stage's runs/NAME/STAGE/model.safetensors, a compressed export or an .onnx file)", err)
	}
	return err
}

// referenceFlag is eval's, predict's and bench's --reference.
const referenceFlag = "compute as the training graph does: dense float products, static quantized layers in float (no sparse or static int8 kernels, whose sums differ in the last bits)"

// prepareEvaluation loads the recipe, its data and the checkpoint (any stage's
// output, a compressed export, or a plain PyTorch state_dict read with the
// recipe's model section), and refuses a checkpoint that does not fit the
// data. A stage names the data: its own data key merged over the recipe's
// (empty: the recipe's data section).
func (a *app) prepareEvaluation(path, recipePath, stage string, sets []string, split string, reference bool) (*evaluation, error) {
	if recipePath == "" {
		return nil, usagef("--recipe is needed: the recipe names the data (and the architecture of a plain PyTorch state_dict)")
	}
	recipe, err := a.loadRecipe(recipePath, sets)
	if err != nil {
		return nil, err
	}
	d, batch := recipe.Data, recipe.EvalBatch()
	if stage != "" {
		s := recipe.Stage(stage)
		if s == nil {
			return nil, usagef("--stage %s: no such stage in %s (stages: %s)", stage, recipePath, strings.Join(recipe.StageIDs(), ", "))
		}
		d, batch = recipe.StageData(s), recipe.StageEvalBatch(s)
	}
	if d == nil {
		return nil, usagef("%s has no data section to run the model on", recipePath)
	}
	m, err := export.LoadModel(path, &recipe.Model) // safetensors, compressed or ONNX
	if err != nil {
		return nil, recipeAsCheckpoint(path, err)
	}
	ds, err := data.Load(*d, recipe.Dir, recipe.Seed)
	if err != nil {
		return nil, err
	}
	if err := model.FitsData(m.Spec, ds); err != nil {
		return nil, fmt.Errorf("%s does not fit %s's data: %w", path, recipePath, err)
	}
	e := &evaluation{recipe: recipe, model: m, split: ds.Test, batch: batch, reference: reference}
	if split == "train" {
		e.split = ds.Train
	}
	return e, nil
}

func (a *app) predictCommand() *cobra.Command {
	var recipePath, format, split, out, stage string
	var sets []string
	var reference bool
	cmd := &cobra.Command{
		Use:   "predict CHECKPOINT --recipe RECIPE --out FILE.npy",
		Short: "Write a checkpoint's logits on the recipe's data as a .npy array",
		Long: `Run CHECKPOINT on a split of the recipe's data, in the data's order, and write its
logits as a float32 .npy array [N, classes] (numpy.load reads it). Each layer
runs on the fastest exact kernels its form allows (int8 for dynamically quantized
layers, sparse for pruned ones where this machine's sparse kernels win, dense
float otherwise: see shrink bench); --reference computes as before (dense float).

CHECKPOINT is any stage's output, a compressed export, a plain PyTorch
state_dict saved with safetensors (its architecture is then the recipe's model
section), or an ONNX file (.onnx, as torch.onnx.export writes it: network and
weights are imported, as model: {onnx: FILE} does); it wins over the recipe's
model.checkpoint. Batches are
data.eval_batch_size when the recipe sets it, else data.batch_size: a dynamically
quantized model measures its activation ranges per batch, so this is how its
numbers are reproduced. --stage runs on a stage's data instead (its data key
merged over the recipe's data section, as recipes/lora-transfer.yaml's
Fashion-MNIST branches). A checkpoint that does not fit the data (input size,
classes) is an error.

It prints accuracy, loss and samples; with --format json the object shrink eval
prints.`,
		Example: `  shrink predict runs/quickstart/train/model.safetensors --recipe recipes/quickstart.yaml --out logits.npy
  python3 -c 'import numpy; print(numpy.load("logits.npy").shape)'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("--out is needed: the .npy file the logits go to")
			}
			e, err := a.prepareEvaluation(args[0], recipePath, stage, sets, split, reference)
			if err != nil {
				return err
			}
			runner.UseAllCores()
			logits, err := e.logits(cmd.Context())
			if err != nil {
				return err
			}
			classes := e.model.Spec.Classes
			arr := data.Float32NPY([]int{e.split.N, classes}, logits)
			if err := checkpoint.WriteBytes(out, data.EncodeNPY(arr)); err != nil {
				return err
			}
			res := model.Score(logits, e.split.Y, classes, e.batch)
			if format == "json" {
				return json.NewEncoder(a.stdout).Encode(res)
			}
			fmt.Fprintf(a.stdout, "accuracy %.4f  loss %.4f  samples %d\n", res.Accuracy, res.Loss, res.Samples)
			fmt.Fprintf(a.stderr, "wrote %s: float32 [%d, %d] logits of the %s split\n", out, e.split.N, classes, split)
			return nil
		},
	}
	cmd.Flags().StringVar(&recipePath, "recipe", "", "the recipe whose data (and model section) to use")
	cmd.Flags().StringVar(&out, "out", "", "the .npy file to write the logits to")
	cmd.Flags().StringVar(&stage, "stage", "", "run on this stage's data (its data key over the recipe's)")
	enumVar(cmd.Flags(), &split, "split", "test", []string{"test", "train"}, "which split to run on")
	enumVar(cmd.Flags(), &format, "format", "text", []string{"text", "json"}, "output format")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a recipe key (repeatable)")
	cmd.Flags().BoolVar(&reference, "reference", false, referenceFlag)
	return cmd
}
