package runner

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/pipeline"
)

// The memory model behind AutoJobs (docs/BRANCHES.md compares it with
// measurements). Deliberately simple, and on the generous side; Go's garbage
// collector lets the heap grow to about twice what is live, hence the 2s:
//   - a stage holds its model's parameters about 8 times (weights, gradients,
//     two Adam moments, the input and output copies, the graph's buffers),
//     and the activations of one batch (the larger of the training and
//     evaluation batch sizes) 1.5 times (values, and gradients of most);
//   - the dataset is loaded once and shared by every stage: float32 features,
//     plus the raw bytes while decoding (x 2.5 in all);
//   - only 80% of the available memory is planned for, less a fixed 64 MiB
//     for the program itself.
const (
	paramCopies      = 2 * 8
	activationCopies = 2 * 1.5
	datasetOverhead  = 2.5
	memoryShare      = 0.8
	baseBytes        = 64 << 20
)

// AutoJobs is the default --jobs: one stage per CPU, fewer when that many
// stages would not fit in the available memory. why explains the number.
func AutoJobs(r *pipeline.Recipe) (jobs int, why string) {
	cpus := runtime.GOMAXPROCS(0)
	avail, err := availableMemory()
	if err != nil {
		return cpus, fmt.Sprintf("%d CPU(s); available memory unknown (%v)", cpus, err)
	}
	stage, dataset := StageBytes(r), DatasetBytes(r)
	jobs = jobsFor(cpus, avail, stage, dataset)
	return jobs, fmt.Sprintf("%d CPU(s), %s available, about %s per stage and %s for the data once",
		cpus, mib(avail), mib(stage), mib(dataset))
}

// jobsFor fits stages of stageBytes each, beside the data, into the usable
// share of avail, one per CPU at most and one at least.
func jobsFor(cpus int, avail, stageBytes, datasetBytes int64) int {
	budget := int64(float64(avail)*memoryShare) - datasetBytes - baseBytes
	n := int64(cpus)
	if stageBytes > 0 {
		n = min(n, budget/stageBytes)
	}
	return int(max(n, 1))
}

// StageBytes estimates the memory one running stage of the recipe needs.
func StageBytes(r *pipeline.Recipe) int64 {
	params, act := modelSize(r.Model)
	return params*4*paramCopies + int64(float64(int64(batchRows(r))*act*4)*activationCopies)
}

// batchRows is the largest batch a stage builds a graph for: the larger of the
// training and evaluation batch sizes, at most the data's rows (training and
// evaluation cap their batches there).
func batchRows(r *pipeline.Recipe) int {
	if r.Data == nil {
		return 1
	}
	batch := max(r.Data.BatchSize, r.Data.EvalBatchSize)
	if info, err := data.Peek(*r.Data, r.Dir); err == nil && info.Train > 0 {
		batch = min(batch, max(info.Train, info.Test))
	}
	return batch
}

// MemoryError is a recipe too big for this machine's memory: nothing runs.
type MemoryError struct{ msg string }

func (e *MemoryError) Error() string { return e.msg }

// gib writes a size in GiB with one decimal, or MiB below 1 GiB.
func gib(b int64) string {
	if b < 1<<30 {
		return mib(b)
	}
	return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
}

// MemoryProblem says when the recipe cannot run in the memory this machine
// has available, with the estimate: the least a stage holds (its model four
// times over, for weights, gradients and Adam's two moments, and one batch of
// activations), plus the data. A model of a hundred million hidden units or a
// batch of a trillion rows is refused with numbers instead of ending in
// "fatal error: out of memory". nil when it fits, or when the available memory
// is unknown.
func MemoryProblem(r *pipeline.Recipe) error {
	problem := func(format string, args ...any) error { return &MemoryError{fmt.Sprintf(format, args...)} }
	avail, err := availableMemory()
	if err != nil {
		return nil
	}
	params, act := modelSize(r.Model)
	batch := int64(batchRows(r))
	model, acts := params*4*4, batch*act*4
	dataset := int64(float64(DatasetBytes(r)) / datasetOverhead)
	if need := model + acts + dataset; need > avail || need < 0 {
		return problem("the recipe needs at least %s of memory and %s is available: its model has %d values (%s as weights, gradients and optimizer state), a batch of %d rows holds %d activations per row (%s), and the data takes %s; use a smaller model or a smaller batch_size",
			gib(need), gib(avail), params, gib(model), batch, act, gib(acts), gib(dataset))
	}
	return nil
}

// modelSize counts a model's state_dict values and the activations of one
// sample: each layer's output, and for a layer with weights the input it
// multiplies (a convolution's unfolded patches, as im2col makes them: its
// multiply-adds over its output channels).
func modelSize(spec arch.Spec) (params, activations int64) {
	g, err := spec.Graph()
	if err != nil {
		return 0, 0 // validated before; nothing to estimate
	}
	for _, n := range g.Nodes {
		activations += int64(n.Out.Size())
		for _, t := range n.Tensors() {
			params += int64(arch.Shape(t.Shape).Size())
			if t.Role == arch.Weight && t.Shape[0] > 0 {
				activations += n.MACs() / int64(t.Shape[0])
			}
		}
	}
	return params, activations
}

// DatasetBytes estimates the memory of the recipe's data once loaded.
func DatasetBytes(r *pipeline.Recipe) int64 {
	d := r.Data
	if d == nil {
		return 0
	}
	var values int64
	switch d.Dataset {
	case data.KindMNIST, data.KindFashionMNIST:
		values = 70000 * 784
	case data.KindNPY:
		// The headers tell the rows and their shape (every value becomes a float32).
		if info, err := data.Peek(*d, r.Dir); err == nil {
			values = int64(info.Train+info.Test) * int64(product(info.Shape))
		}
	case data.KindSynthetic:
		values = int64(d.Samples) * int64(d.Features)
	case data.KindIDX:
		// One byte per pixel on disk (gzip assumed to shrink it 4 times).
		for _, f := range []string{d.TrainImages, d.TestImages} {
			if st, err := os.Stat(r.Path(f)); err == nil {
				n := st.Size()
				if strings.HasSuffix(f, ".gz") {
					n *= 4
				}
				values += n
			}
		}
	}
	return int64(float64(values*4) * datasetOverhead)
}

func product(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// availableMemory reads MemAvailable from /proc/meminfo (Linux); elsewhere
// it is unknown and AutoJobs goes by CPUs alone.
func availableMemory() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/meminfo has no MemAvailable")
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }
