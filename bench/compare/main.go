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
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/shrink-ml/shrink/data"
)

type sample map[string]float64 // benchmark name -> ns/op

func main() {
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	benchRE := flag.String("bench", "TrainStep|Epoch|Forward", "Go benchmarks to run")
	python := flag.String("python", "/usr/bin/python3", "the Python with torch")
	tags := flag.String("tags", "", "Go build tags for shrink's side (openblas)")
	only := flag.String("only", "", "PyTorch side: only the benchmarks whose name contains this (LSTM with -bench LSTM)")
	oneCore := flag.Bool("1", false, "one core only: skip the two-core runs of both sides (half the time)")
	flag.Parse()
	dir, err := data.FindMNIST()
	check(err)
	var go1, go2, t1, t2 []sample
	for r := 1; r <= *rounds; r++ {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", r, *rounds)
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
	fmt.Println("| benchmark | shrink 1 core | shrink 2 cores | PyTorch 1 core (T1) | PyTorch 2 cores (T2) | shrink1/T1 | shrink2/T2 | shrink1/T2 |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, n := range list {
		fmt.Printf("| %s | %s | %s | %s | %s | %.2f | %.2f | %.2f |\n", n,
			dur(median(go1, n)), dur(median(go2, n)), dur(median(t1, n)), dur(median(t2, n)),
			ratio(go1, t1, n), ratio(go2, t2, n), ratio(go1, t2, n))
	}
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(-\d+)?\s+\d+\s+([\d.]+) ns/op`)

func goBench(re, threads, tags string) sample {
	cmd := exec.Command("go", "test", "-tags", tags, "./bench", "-run", "^$", "-bench", re, "-benchtime", "2s", "-count", "1")
	cmd.Env = append(os.Environ(), "SHRINK_THREADS="+threads)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	check(err)
	s := sample{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := benchLine.FindStringSubmatch(sc.Text()); m != nil {
			ns, _ := strconv.ParseFloat(m[3], 64)
			s[m[1]] = ns
		}
	}
	return s
}

func torchBench(python, mnist string, threads int, only string) sample {
	cmd := exec.Command(python, "bench/torch_bench.py", "--threads", strconv.Itoa(threads), "--mnist", mnist, "--only", only)
	cmd.Env = os.Environ()
	if threads == 1 {
		cmd.Env = append(cmd.Env, "OPENBLAS_NUM_THREADS=1")
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	check(err)
	s := sample{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			Name string
			NS   float64
		}
		if json.Unmarshal([]byte(line), &r) == nil && r.Name != "" {
			s[r.Name] = r.NS
		}
	}
	return s
}

func median(ss []sample, name string) float64 {
	var v []float64
	for _, s := range ss {
		if x, ok := s[name]; ok {
			v = append(v, x)
		}
	}
	return med(v)
}

func ratio(a, b []sample, name string) float64 {
	var v []float64
	for i := range a {
		if x, ok := a[i][name]; ok {
			if y, ok := b[i][name]; ok && y > 0 {
				v = append(v, x/y)
			}
		}
	}
	return med(v)
}

func med(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
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
