// Command ortcheck exports every checkpoint of a recipe's run to ONNX and
// checks it in onnxruntime against shrink's own logits on the recipe's test
// data, the way shrink predict computes them (package internal/ortcheck):
// ONNX's checker passes; a float model matches to float32 rounding; a
// quantized one agrees on at least 99.5% of the classes with a median
// |logit difference| of at most 2e-3. With -bench it also times onnxruntime
// and shrink's own inference (one thread, batch 1 and 256) and prints
// docs/DEPLOY.md's table.
//
//	go run ./tools/ortcheck recipes/quickstart.yaml runs/quickstart
//	go run ./tools/ortcheck -bench -stages train,static recipes/quantize-static.yaml runs/quantize-static
//
// It needs onnxruntime-node (cd tools/ort && npm ci --ignore-scripts) and
// python3-onnx. It exits 1 when a check fails, 2 when it cannot check.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/shrink-ml/shrink/export/onnxexport"
	"github.com/shrink-ml/shrink/internal/ortcheck"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
	_ "github.com/shrink-ml/shrink/stages/all"
)

func main() {
	bench := flag.Bool("bench", false, "also time onnxruntime and shrink at batch 1 and 256 (one thread each)")
	only := flag.String("stages", "", "comma-separated stage folders to check (default: every checkpoint in the run)")
	keep := flag.String("keep", "", "write the exports to this folder")
	floatBias := flag.Bool("float-bias", false, "export with every quantized layer's bias a float Add (shrink export --float-bias)")
	intBias := flag.Bool("int-bias", false, "export with every bias onnxruntime can round to INT32 in its Conv or Gemm node (shrink export --int-bias)")
	biasBudget := flag.Float64("bias-budget", 0, "the default export's budget of moved activations per sample for INT32 biases (0: onnxexport.DefaultBiasBudget)")
	ortDynamic := flag.Bool("ort-dynamic", false, "export reduce_range inputs on onnxruntime's own grid (shrink export --ort-dynamic): its integer kernels, logits off by the grids' rounding")
	opt := flag.String("opt", "", "onnxruntime's graph optimizations: disabled, basic, extended or all (default)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: ortcheck [-bench] [-stages a,b] [-keep DIR] [-float-bias | -int-bias | -bias-budget N] [-ort-dynamic] [-opt LEVEL] RECIPE RUNDIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	// Before the recipe, the run and onnxruntime: a bad combination would
	// otherwise surface only after the first export, or be ignored.
	switch {
	case *floatBias && *intBias:
		usage("-float-bias (every bias apart) and -int-bias (every bias in its node) exclude each other: give one")
	case *biasBudget < 0:
		usage(fmt.Sprintf("-bias-budget %g: give 0 or more moved activations per sample (0: the default, %g)", *biasBudget, float64(onnxexport.DefaultBiasBudget)))
	case *biasBudget != 0 && (*floatBias || *intBias):
		usage("-bias-budget is the default export's budget: -float-bias and -int-bias replace it; give one of them, or the budget alone")
	}
	recipe, err := pipeline.Load(flag.Arg(0), stages.Default, pipeline.Options{Env: os.Environ(), CheckFiles: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ortcheck:", err)
		os.Exit(2)
	}
	o := ortcheck.Options{Keep: *keep, Bench: *bench, Opt: *opt, FloatBias: *floatBias, IntBias: *intBias, BiasBudget: *biasBudget, ORTDynamic: *ortDynamic, Log: os.Stderr}
	if *only != "" {
		o.Stages = strings.Split(*only, ",")
	}
	rows, ok, err := ortcheck.Run(recipe, flag.Arg(1), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ortcheck:", err)
		os.Exit(2)
	}
	ortcheck.Report(os.Stdout, rows, *bench)
	if !ok {
		os.Exit(1)
	}
}

// usage reports a bad command line and exits 2, as flag does.
func usage(msg string) {
	fmt.Fprintln(os.Stderr, "ortcheck:", msg)
	flag.Usage()
	os.Exit(2)
}
