package infer

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/internal/metaseed"
	"github.com/shrink-ml/shrink/model"
)

// fuzzFiles are testModels' networks as checkpoint files, built once.
var fuzzFiles = sync.OnceValues(func() ([][]byte, error) {
	var out [][]byte
	for _, tm := range testModels() {
		f, err := tm.m.ToFile(map[string]string{"stage": tm.name})
		if err != nil {
			return nil, err
		}
		b, err := checkpoint.Marshal(f)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
})

// FuzzMetadata is export's FuzzMetadata for the inference path, which plans
// its own kernels (sparse, int8, the static int8 taps route with fused
// epilogues, micro-batches) from what the metadata says of every layer: a
// checkpoint whose "compression" or "arch" says anything either fails to load
// or to compile with an error, or predicts, in one net and in any batch,
// without a panic, the same number of logits as `shrink eval`'s reference
// graph.
func FuzzMetadata(f *testing.F) {
	files, err := fuzzFiles()
	if err != nil {
		f.Fatal(err)
	}
	keys := []string{"compression", "arch"}
	metaseed.Add(f, files, keys, [][2]string{
		{`"bits":8`, `"bits":1`}, {`"bits":8`, `"bits":2`}, {`"bits":4`, `"bits":7`},
		{`"mode":"static"`, `"mode":"dynamic"`}, {`"mode":"dynamic"`, `"mode":"static"`},
		{`"scheme":"asymmetric"`, `"scheme":"symmetric"`}, {`"scheme":"symmetric"`, `"scheme":"asymmetric"`},
		{`"granularity":"per_channel"`, `"granularity":"per_tensor"`}, {`"granularity":"per_tensor"`, `"granularity":"per_channel"`},
		{`"reduce_range":true`, `"reduce_range":false`}, {`"pruned":true`, `"pruned":false`},
		{`"width":4`, `"width":3`}, {`"depth":8`, `"depth":14`}, {`"classes":3`, `"classes":1`},
	})
	f.Fuzz(func(t *testing.T, which, key uint8, value string) {
		b := files[int(which)%len(files)]
		c, err := checkpoint.Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		c.Metadata[keys[int(key)%len(keys)]] = value
		m, err := model.FromFile(c, nil)
		if err != nil {
			return
		}
		r, err := New(m, Options{})
		if err != nil {
			return
		}
		ref, err := New(m, Options{Reference: true})
		if err != nil {
			t.Fatalf("the fast path compiles and the reference does not: %v", err)
		}
		rng := rand.New(rand.NewPCG(uint64(which), uint64(len(value))))
		const n = 11 // above the micro-batch, not a multiple of it
		x := make([]float32, n*r.InputSize())
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		for _, run := range []*Model{r, ref} {
			if _, err := run.Predict(x[:run.InputSize()], 1); err != nil {
				return
			}
			y, err := run.Predict(x, n)
			if err != nil {
				return
			}
			if len(y) != n*r.Classes() {
				t.Fatalf("%d logits for %d samples of %d classes", len(y), n, r.Classes())
			}
		}
	})
}
