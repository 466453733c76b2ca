// Command resnetinfer times ResNet-20 inference on one thread on the
// checkpoints of recipes/resnet-fashion-compress.yaml: the dense float
// network (train), the pruned float one (prune) and the pruned int8 ones
// (qat, distill), at batch 1 and 256, interleaved over rounds so a noisy
// neighbour hits every variant alike, and prints medians over rounds with
// the ratios issues 17 and 20 ask about:
//
//	flock /tmp/shrink-heavy.lock nice -n 5 go run ./bench/resnetinfer [-run DIR] [-rounds 3] [-unfused] [-nets] [-columns] [-torch] [-ort]
//
// Each variant runs as shrink predict/eval/bench run it (infer.Model's
// PredictInto: static int8 convolutions on integer kernels, batch norms,
// adds and ReLUs fused into the convolutions' output pass, static int8
// networks in micro-batches). -unfused also times the graphs without
// fusion (what ran before it, one model.Net of the whole batch); -nets the
// fused graphs as one net of the whole batch (no micro-batches); -columns
// the int8 networks as they ran before the taps route (convolutions on the
// column route, nn.UseInt8Taps, one net of the whole batch); -torch runs
// bench/resnet_infer_torch.py once per round (PyTorch 1.13 on one thread,
// the same two architectures in float and FX-quantized int8 on oneDNN);
// -ort times onnxruntime (tools/ort) each round on the pruned float and
// int8 checkpoints exported with shrink export's defaults.
// SHRINK_PLANAR=off runs the float convolutions on the paths they took
// before internal/planar (the tall layout and im2col; the same bits), to
// compare the two.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/export"
	"github.com/shrink-ml/shrink/export/onnxexport"
	"github.com/shrink-ml/shrink/infer"
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/internal/npy"
	"github.com/shrink-ml/shrink/internal/ortest"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/nn"
)

type variant struct {
	name string
	runs map[int]func() error // by batch size
}

// im2size is the number of input values of one sample.
func im2size(m *model.Model) int { return size(m.Spec.InputShape()) }

// size is the number of values of a tensor of this shape.
func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func main() {
	run := flag.String("run", "runs/resnet-fashion-compress", "the run directory of recipes/resnet-fashion-compress.yaml (train, prune, qat, distill checkpoints)")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	unfused := flag.Bool("unfused", false, "also time the graphs without fusion")
	columns := flag.Bool("columns", false, "also time the int8 networks as they ran before the taps route: convolutions on the column route, one net of the whole batch")
	nets := flag.Bool("nets", false, "also time the fused networks as one net of the whole batch (model.Build; package infer runs static int8 networks in micro-batches)")
	torch := flag.Bool("torch", false, "also run bench/resnet_infer_torch.py each round")
	ort := flag.Bool("ort", false, "also time onnxruntime each round on the pruned float and int8 (qat) checkpoints, exported with shrink export's defaults (needs tools/ort: cd tools/ort && npm ci --ignore-scripts)")
	python := flag.String("python", "/usr/bin/python3", "the Python with torch")
	only := flag.String("only", "", "time only the variants whose name contains this")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the timed rounds to this file")
	flag.Parse()
	runtime.GOMAXPROCS(1)
	gemm.SetThreads(1)
	batches := []int{1, 256}
	calls := map[int]int{1: 40, 256: 2}

	var vs []variant
	for _, st := range []struct{ stage, name string }{
		{"train", "dense float"}, {"prune", "pruned float"}, {"qat", "pruned int8 (qat)"}, {"distill", "pruned int8 (distill)"},
	} {
		path := filepath.Join(*run, st.stage, "model.safetensors")
		m, err := export.LoadModel(path, nil)
		if err != nil {
			check(fmt.Errorf("%w (run recipes/resnet-fashion-compress.yaml first, or give its run directory with -run)", err))
		}
		type mode struct{ fuse, columns, net bool }
		modes := []mode{{fuse: true}}
		if *unfused {
			modes = append(modes, mode{net: true})
		}
		if *nets {
			modes = append(modes, mode{fuse: true, net: true})
		}
		if *columns && strings.Contains(st.name, "int8") {
			modes = append(modes, mode{fuse: true, columns: true, net: true})
		}
		for _, md := range modes {
			v := variant{name: st.name, runs: map[int]func() error{}}
			switch {
			case !md.fuse:
				v.name += ", unfused"
			case md.columns:
				v.name += ", columns"
			case md.net:
				v.name += ", one net"
			}
			var im *infer.Model
			if !md.net {
				im, err = infer.New(m, infer.Options{})
				check(err)
			}
			for _, bs := range batches {
				rng := rand.New(rand.NewPCG(1, uint64(bs)))
				x := make([]float32, bs*im2size(m))
				for i := range x {
					x[i] = rng.Float32()
				}
				if im != nil {
					// As shrink predict, eval and bench run it.
					dst := make([]float32, bs*m.Spec.Classes)
					v.runs[bs] = func() error { return im.PredictInto(dst, x, bs) }
				} else {
					restore := nn.UseInt8Taps(!md.columns && nn.UseInt8TapsDefault())
					net, err := model.Build(m, model.NetOptions{Batch: bs, Mode: model.ModeEval, StaticInt8: true, Fuse: md.fuse})
					restore()
					check(err)
					copy(net.X, x)
					v.runs[bs] = net.Run
				}
				check(v.runs[bs]()) // warm up (compiles infer's nets)
			}
			if strings.Contains(v.name, *only) {
				vs = append(vs, v)
			}
		}
	}
	var onnx []ortModel
	var rt *ortest.Runtime
	if *ort {
		var err error
		rt, err = ortest.Locate()
		check(err)
		dir, err := os.MkdirTemp("", "resnetinfer-ort")
		check(err)
		defer os.RemoveAll(dir)
		onnx = exportORT(*run, dir)
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}

	times := map[string][]float64{} // "name/batch" -> seconds per call, per round
	for r := 1; r <= *rounds; r++ {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", r, *rounds)
		for _, bs := range batches {
			for _, v := range vs {
				run := v.runs[bs]
				t := time.Now()
				for range calls[bs] {
					check(run())
				}
				key := fmt.Sprintf("%s/%d", v.name, bs)
				times[key] = append(times[key], time.Since(t).Seconds()/float64(calls[bs]))
			}
		}
		if *torch {
			for name, s := range torchRound(*python, *run) {
				times[name] = append(times[name], s)
			}
		}
		for _, om := range onnx {
			for _, bs := range batches {
				key := fmt.Sprintf("%s/%d", om.name, bs)
				times[key] = append(times[key], ortSeconds(rt, om, bs, calls[bs]))
			}
		}
	}

	med := func(key string) float64 {
		s := append([]float64(nil), times[key]...)
		if len(s) == 0 {
			return 0
		}
		sort.Float64s(s)
		return s[len(s)/2]
	}
	fmt.Printf("one thread, median of %d interleaved rounds (batch 1: %d calls per round, batch 256: %d)\n\n", *rounds, calls[1], calls[256])
	fmt.Println("| variant | batch 1 | batch 256 |")
	fmt.Println("| --- | ---: | ---: |")
	var names []string
	for _, v := range vs {
		names = append(names, v.name)
	}
	if *torch {
		names = append(names, "PyTorch dense float", "PyTorch pruned float", "PyTorch dense int8", "PyTorch pruned int8")
	}
	for _, om := range onnx {
		names = append(names, om.name)
	}
	for _, n := range names {
		fmt.Printf("| %s | %s | %s |\n", n, ms(med(n+"/1")), ms(med(n+"/256")))
	}
	fmt.Println()
	fmt.Println("| ratio | batch 1 | batch 256 |")
	fmt.Println("| --- | ---: | ---: |")
	ratio := func(label, a, b string) {
		var cells []string
		for _, bs := range batches {
			x, y := med(fmt.Sprintf("%s/%d", a, bs)), med(fmt.Sprintf("%s/%d", b, bs))
			if x == 0 || y == 0 {
				cells = append(cells, "")
				continue
			}
			cells = append(cells, fmt.Sprintf("%.2fx", x/y))
		}
		fmt.Printf("| %s | %s |\n", label, strings.Join(cells, " | "))
	}
	ratio("issue 17: dense float / pruned float", "dense float", "pruned float")
	ratio("issue 20: pruned float / pruned int8 (qat)", "pruned float", "pruned int8 (qat)")
	ratio("issue 20: pruned float / pruned int8 (distill)", "pruned float", "pruned int8 (distill)")
	if *unfused {
		for _, n := range []string{"dense float", "pruned float", "pruned int8 (qat)"} {
			ratio("fusion: "+n+" unfused / fused", n+", unfused", n)
		}
	}
	if *columns {
		for _, n := range []string{"pruned int8 (qat)", "pruned int8 (distill)"} {
			ratio("int8 now / before: "+n+" columns / infer", n+", columns", n)
		}
	}
	if *nets {
		for _, n := range []string{"dense float", "pruned float", "pruned int8 (qat)", "pruned int8 (distill)"} {
			ratio("micro-batches: "+n+" one net / infer", n+", one net", n)
		}
	}
	if *torch {
		ratio("PyTorch dense float / pruned float", "PyTorch dense float", "PyTorch pruned float")
		ratio("PyTorch pruned float / pruned int8", "PyTorch pruned float", "PyTorch pruned int8")
		ratio("PyTorch int8 / shrink int8 (qat), pruned", "PyTorch pruned int8", "pruned int8 (qat)")
	}
	if *ort {
		ratio("onnxruntime float / shrink float, pruned", "onnxruntime pruned float", "pruned float")
		ratio("onnxruntime int8 QDQ / shrink int8 (qat), pruned", "onnxruntime pruned int8 (qat)", "pruned int8 (qat)")
	}
}

// ortModel is a checkpoint exported to ONNX for onnxruntime.
type ortModel struct {
	name, file string
	input      []int // one sample's shape
}

// exportORT writes the prune and qat checkpoints as shrink export does by
// default (float; int8 QDQ with its bias rule, docs/ONNX.md).
func exportORT(run, dir string) []ortModel {
	var out []ortModel
	for _, st := range []struct{ stage, name string }{{"prune", "onnxruntime pruned float"}, {"qat", "onnxruntime pruned int8 (qat)"}} {
		f, err := checkpoint.ReadFile(filepath.Join(run, st.stage, "model.safetensors"))
		check(err)
		m, err := model.FromFile(f, nil)
		check(err)
		res, err := onnxexport.Export(m, onnxexport.Options{Metadata: f.Metadata})
		check(err)
		file := filepath.Join(dir, st.stage+".onnx")
		check(res.Model.WriteFile(file))
		out = append(out, ortModel{st.name, file, m.Spec.InputShape()})
	}
	return out
}

// ortSeconds is onnxruntime's median seconds per call of om on a batch of
// bs random images, one intra-op thread, over calls timed runs (at least 5)
// after 3 untimed ones.
func ortSeconds(rt *ortest.Runtime, om ortModel, bs, calls int) float64 {
	shape := append([]int{bs}, om.input...)
	rng := rand.New(rand.NewPCG(1, uint64(bs)))
	x := make([]float32, size(shape))
	for i := range x {
		x[i] = rng.Float32()
	}
	in := map[string]*npy.Array{"input": {Shape: shape, Data: x}}
	res, err := rt.Exec(om.file, in, ortest.Options{Runs: max(calls, 5), Warmup: 3, Threads: 1})
	check(err)
	return res.Timing.MedianMS / 1e3
}

// torchRound runs the PyTorch script once on the run's checkpoints: seconds
// per call by "name/batch".
func torchRound(python, run string) map[string]float64 {
	cmd := exec.Command(python, filepath.Join("bench", "resnet_infer_torch.py"), "--run", run)
	cmd.Env = append(os.Environ(), "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	check(cmd.Run())
	res := map[string]float64{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r struct {
			Name string  `json:"name"`
			NS   float64 `json:"ns"`
		}
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Name != "" {
			res[r.Name] = r.NS / 1e9
		}
	}
	return res
}

func ms(s float64) string {
	switch {
	case s == 0:
		return ""
	case s < 0.01:
		return fmt.Sprintf("%.2f ms", s*1e3)
	}
	return fmt.Sprintf("%.0f ms", s*1e3)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "resnetinfer:", err)
		os.Exit(1)
	}
}
