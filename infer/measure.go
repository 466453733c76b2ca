package infer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Timing is how fast a Model ran batches of one size on this machine.
type Timing struct {
	Batch int `json:"batch"`
	// Calls is how many timed calls the numbers summarize.
	Calls int `json:"calls"`
	// Median and P90 are the per-call latencies, in seconds.
	Median float64 `json:"median_s"`
	P90    float64 `json:"p90_s"`
	// Throughput is samples per second at the median latency.
	Throughput float64 `json:"samples_per_s"`
}

// Measure times Predict on batches of batch samples (seeded random inputs
// in [0, 1), so the same data every time) for about d after a warm-up
// call, one call at a time, and returns the median and 90th percentile
// latency. The inputs are the same in every call, so dynamic quantization
// sees the same ranges; timings are of this machine at that moment.
func (r *Model) Measure(batch int, d time.Duration) (Timing, error) {
	if batch < 1 {
		return Timing{}, fmt.Errorf("infer: Measure of a batch of %d", batch)
	}
	rng := rand.New(rand.NewPCG(1, uint64(batch)))
	x := make([]float32, batch*r.in)
	for i := range x {
		x[i] = rng.Float32()
	}
	dst := make([]float32, batch*r.classes)
	if err := r.PredictInto(dst, x, batch); err != nil { // compiles, warms caches
		return Timing{}, err
	}
	var lat []float64
	start := time.Now()
	for len(lat) < 3 || time.Since(start) < d {
		t0 := time.Now()
		if err := r.PredictInto(dst, x, batch); err != nil {
			return Timing{}, err
		}
		lat = append(lat, time.Since(t0).Seconds())
	}
	slices.Sort(lat)
	t := Timing{Batch: batch, Calls: len(lat), Median: lat[len(lat)/2], P90: lat[len(lat)*9/10]}
	t.Throughput = float64(batch) / t.Median
	return t, nil
}
