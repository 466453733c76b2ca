// Package rounds gathers the timings of interleaved benchmark rounds (Go's
// benchmark lines, PyTorch's and onnxruntime's JSON lines) and the medians
// bench's comparison commands print: a round runs every side once, so a
// ratio taken within a round cancels most of a shared machine's drift.
package rounds

import (
	"bufio"
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Sample is one round of one side: benchmark name -> nanoseconds per op.
type Sample map[string]float64

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(-\d+)?\s+\d+\s+([\d.]+) ns/op`)

// FromGoBench reads `go test -bench` output; names drop "Benchmark" and the
// -GOMAXPROCS suffix ("ResNet/step").
func FromGoBench(out []byte) Sample {
	s := Sample{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := benchLine.FindStringSubmatch(sc.Text()); m != nil {
			ns, _ := strconv.ParseFloat(m[3], 64)
			s[m[1]] = ns
		}
	}
	return s
}

// FromJSONLines reads one {"name": ..., "ns": ...} object per line (other
// lines are ignored), names without trim.
func FromJSONLines(out []byte, trim string) Sample {
	s := Sample{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			Name string
			NS   float64
		}
		if json.Unmarshal([]byte(line), &r) == nil && r.Name != "" {
			s[strings.TrimPrefix(r.Name, trim)] = r.NS
		}
	}
	return s
}

// DropTop removes each name's first element ("Infer/mlp/batch=1" ->
// "mlp/batch=1"), so benchmarks of different top-level names compare.
func (s Sample) DropTop() Sample {
	d := make(Sample, len(s))
	for k, v := range s {
		if _, rest, ok := strings.Cut(k, "/"); ok {
			k = rest
		}
		d[k] = v
	}
	return d
}

// Median is the median over rounds of one benchmark's time (0 if absent).
func Median(ss []Sample, name string) float64 {
	var v []float64
	for _, s := range ss {
		if x, ok := s[name]; ok {
			v = append(v, x)
		}
	}
	return Med(v)
}

// Ratio is the median over rounds of a[name] / b[name], each ratio taken
// within one round.
func Ratio(a, b []Sample, name string) float64 {
	var v []float64
	for i := range min(len(a), len(b)) {
		if x, ok := a[i][name]; ok {
			if y, ok := b[i][name]; ok && y > 0 {
				v = append(v, x/y)
			}
		}
	}
	return Med(v)
}

// Med is the median of v (0 for none); it sorts v.
func Med(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
