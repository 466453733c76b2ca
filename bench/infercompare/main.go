// Command infercompare times issue 20's linear-model targets in one session:
// LeNet-300-100 in shrink (package infer: float, Deep Compression, int8
// static and dynamic), in PyTorch (bench/torch_bench.py, oneDNN int8) and
// in onnxruntime (BenchmarkInferORT: the same models exported, int8 as QDQ
// or dynamic quantization), all on one core, at batch 1 and 256; then the
// targets' ratios.
//
//	go run ./bench/infercompare -rounds 3
//	go run ./bench/infercompare -rounds 3 -dc runs/deep-compression-lenet300/qat/model.safetensors
//
// Each round runs the three sides one after another, so a noisy neighbour
// hits each round's sides alike; times are medians over rounds, ratios the
// medians of the per-round ratios. It needs /usr/bin/python3 with torch,
// and onnxruntime-node (cd tools/ort && npm ci --ignore-scripts; without
// it the onnxruntime column stays empty).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/shrink-ml/shrink/bench/internal/rounds"
	"github.com/shrink-ml/shrink/data"
)

var models = []string{"lenet300-float", "lenet300-dc", "lenet300-int8", "lenet300-int8full", "lenet300-static"}

func main() {
	nRounds := flag.Int("rounds", 3, "interleaved rounds")
	python := flag.String("python", "/usr/bin/python3", "the Python with torch")
	benchtime := flag.String("benchtime", "1s", "shrink's -benchtime per benchmark")
	dc := flag.String("dc", "", "time this Deep Compression checkpoint (e.g. runs/deep-compression-lenet300/qat/model.safetensors) as lenet300-dc in shrink and onnxruntime, instead of a randomly pruned model (SHRINK_BENCH_DC)")
	flag.Parse()
	mnist, err := data.FindMNIST()
	check(err)
	dir, err := os.MkdirTemp("", "infercompare")
	check(err)
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bench.test")
	build := exec.Command("go", "test", "-c", "-o", bin, "./bench")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	check(build.Run())
	if *dc != "" {
		abs, err := filepath.Abs(*dc)
		check(err)
		check(os.Setenv("SHRINK_BENCH_DC", abs))
	}
	var shrink, torch, ort []rounds.Sample
	for r := 1; r <= *nRounds; r++ {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", r, *nRounds)
		shrink = append(shrink, goBench(bin, "^BenchmarkInfer$/lenet300", *benchtime))
		torch = append(torch, torchBench(*python, mnist))
		ort = append(ort, goBench(bin, "^BenchmarkInferORT$/lenet300", "1x"))
	}
	fmt.Println("| model | batch | shrink | PyTorch | onnxruntime |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: |")
	for _, m := range models {
		for _, bs := range []int{1, 256} {
			n := fmt.Sprintf("%s/batch=%d", m, bs)
			fmt.Printf("| %s | %d | %s | %s | %s |\n", m, bs, dur(rounds.Median(shrink, n)), dur(rounds.Median(torch, n)), dur(rounds.Median(ort, n)))
		}
	}
	fmt.Println()
	fmt.Println("| target | ratio (median of rounds) | per round |")
	fmt.Println("| --- | ---: | --- |")
	type target struct {
		what     string
		num, den []rounds.Sample
		a, b     string
	}
	for _, t := range []target{
		{"Deep Compression batch 1: shrink float / shrink DC (want >= 3)", shrink, shrink, "lenet300-float/batch=1", "lenet300-dc/batch=1"},
		{"int8 static batch 256: shrink float / shrink int8 (want >= 1.8)", shrink, shrink, "lenet300-float/batch=256", "lenet300-static/batch=256"},
		{"int8 dynamic (full range) batch 256: shrink float / shrink int8", shrink, shrink, "lenet300-float/batch=256", "lenet300-int8full/batch=256"},
		{"int8 dynamic (reduce_range) batch 256: shrink float / shrink int8", shrink, shrink, "lenet300-float/batch=256", "lenet300-int8/batch=256"},
		{"static batch 256: PyTorch int8 / shrink int8 (want >= 1)", torch, shrink, "lenet300-static/batch=256", "lenet300-static/batch=256"},
		{"dynamic batch 256: PyTorch int8 / shrink int8 full range (want >= 1)", torch, shrink, "lenet300-int8full/batch=256", "lenet300-int8full/batch=256"},
		{"static batch 256: onnxruntime QDQ / shrink int8 (want >= 1)", ort, shrink, "lenet300-static/batch=256", "lenet300-static/batch=256"},
		{"dynamic batch 256: onnxruntime / shrink int8 full range (want >= 1)", ort, shrink, "lenet300-int8full/batch=256", "lenet300-int8full/batch=256"},
	} {
		var per []string
		var v []float64
		for i := range t.num {
			x, ok1 := t.num[i][t.a]
			y, ok2 := t.den[i][t.b]
			if ok1 && ok2 && y > 0 {
				v = append(v, x/y)
				per = append(per, fmt.Sprintf("%.2f", x/y))
			}
		}
		r := "-"
		if len(v) > 0 {
			r = fmt.Sprintf("%.2fx", rounds.Med(v))
		}
		fmt.Printf("| %s | %s | %s |\n", t.what, r, strings.Join(per, ", "))
	}
}

// goBench runs the compiled bench tests on one core (SHRINK_THREADS=1).
func goBench(bin, re, benchtime string) rounds.Sample {
	cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", re, "-test.benchtime", benchtime)
	cmd.Dir = "bench"
	cmd.Env = append(os.Environ(), "SHRINK_THREADS=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	check(err)
	return rounds.FromGoBench(out).DropTop()
}

func torchBench(python, mnist string) rounds.Sample {
	cmd := exec.Command(python, "bench/torch_bench.py", "--threads", "1", "--mnist", mnist, "--only", "Infer/lenet300")
	cmd.Env = append(os.Environ(), "OPENBLAS_NUM_THREADS=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	check(err)
	return rounds.FromJSONLines(out, "Infer/")
}

func dur(ns float64) string {
	switch {
	case ns == 0:
		return "-"
	case ns >= 1e6:
		return fmt.Sprintf("%.3f ms", ns/1e6)
	}
	return fmt.Sprintf("%.1f µs", ns/1e3)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "infercompare:", err)
		os.Exit(1)
	}
}
