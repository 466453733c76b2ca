// Command compare times shrink and PyTorch on the same work in one session and
// prints their ratios: `go run ./bench/compare [-rounds 3] [-bench REGEX]`;
// `-bench LSTM -only LSTM` times the LSTM of recipes/lstm-mnist.yaml alone
// (float and dynamic int8 inference, a training step); `-bench '^Infer$'
// -only Infer -1` times inference (package infer) on one core.
//
// Each round runs the Go benchmarks of package bench (one core: SHRINK_THREADS=1;
// two cores: SHRINK_THREADS=2), then bench/torch_bench.py with one real core
// (OPENBLAS_NUM_THREADS=1) and with two; rounds interleave so a noisy neighbour
// hits both sides alike. The table shows medians over rounds of the per-round
// times, and ratios computed per round (shrink / PyTorch; below 1 is faster).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"

	"github.com/shrink-ml/shrink/bench/internal/rounds"
	"github.com/shrink-ml/shrink/data"
)

func main() {
	nRounds := flag.Int("rounds", 3, "interleaved rounds")
	benchRE := flag.String("bench", "TrainStep|Epoch|Forward", "Go benchmarks to run")
	python := flag.String("python", "/usr/bin/python3", "the Python with torch")
	tags := flag.String("tags", "", "Go build tags for shrink's side (openblas)")
	only := flag.String("only", "", "PyTorch side: only the benchmarks whose name contains this (LSTM with -bench LSTM)")
	oneCore := flag.Bool("1", false, "one core only: skip the two-core runs of both sides (half the time)")
	flag.Parse()
	dir, err := data.FindMNIST()
	check(err)
	var go1, go2, t1, t2 []rounds.Sample
	for r := 1; r <= *nRounds; r++ {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", r, *nRounds)
		go1 = append(go1, goBench(*benchRE, "1", *tags))
		t1 = append(t1, torchBench(*python, dir, 1, *only))
		if !*oneCore {
			go2 = append(go2, goBench(*benchRE, "2", *tags))
			t2 = append(t2, torchBench(*python, dir, 2, *only))
		}
	}
	names := map[string]bool{}
	for _, s := range go1 {
		for n := range s {
			names[n] = true
		}
	}
	var list []string
	for n := range names {
		if _, ok := t1[0][n]; ok {
			list = append(list, n)
		}
	}
	sort.Strings(list)
	if *oneCore { // no two-core columns: they would print as zeros
		fmt.Println("| benchmark | shrink 1 core | PyTorch 1 core (T1) | shrink1/T1 |")
		fmt.Println("| --- | --- | --- | --- |")
		for _, n := range list {
			fmt.Printf("| %s | %s | %s | %.2f |\n", n, dur(rounds.Median(go1, n)), dur(rounds.Median(t1, n)), rounds.Ratio(go1, t1, n))
		}
		return
	}
	fmt.Println("| benchmark | shrink 1 core | shrink 2 cores | PyTorch 1 core (T1) | PyTorch 2 cores (T2) | shrink1/T1 | shrink2/T2 | shrink1/T2 |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, n := range list {
		fmt.Printf("| %s | %s | %s | %s | %s | %.2f | %.2f | %.2f |\n", n,
			dur(rounds.Median(go1, n)), dur(rounds.Median(go2, n)), dur(rounds.Median(t1, n)), dur(rounds.Median(t2, n)),
			rounds.Ratio(go1, t1, n), rounds.Ratio(go2, t2, n), rounds.Ratio(go1, t2, n))
	}
}

func goBench(re, threads, tags string) rounds.Sample {
	cmd := exec.Command("go", "test", "-tags", tags, "./bench", "-run", "^$", "-bench", re, "-benchtime", "2s", "-count", "1")
	cmd.Env = append(os.Environ(), "SHRINK_THREADS="+threads)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	check(err)
	return rounds.FromGoBench(out)
}

func torchBench(python, mnist string, threads int, only string) rounds.Sample {
	cmd := exec.Command(python, "bench/torch_bench.py", "--threads", strconv.Itoa(threads), "--mnist", mnist, "--only", only)
	cmd.Env = os.Environ()
	if threads == 1 {
		cmd.Env = append(cmd.Env, "OPENBLAS_NUM_THREADS=1")
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	check(err)
	return rounds.FromJSONLines(out, "")
}

func dur(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.2f s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	}
	return fmt.Sprintf("%.0f µs", ns/1e3)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}
