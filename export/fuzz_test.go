package export

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/compress"
	"github.com/shrink-ml/shrink/internal/metaseed"
	"github.com/shrink-ml/shrink/model"
)

// fuzzFiles are the test models as safetensors files, built once.
var fuzzFiles = sync.OnceValue(func() [][]byte {
	models := testModels()
	var out [][]byte
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range models {
			if !yield(k) {
				return
			}
		}
	}) {
		f, err := models[name].ToFile(map[string]string{"stage": name})
		if err != nil {
			panic(err)
		}
		b, err := checkpoint.Marshal(f)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
})

// metadataKeys are the metadata entries FuzzMetadata replaces: the JSON that
// rebuilds the model.
var metadataKeys = []string{"compression", "arch"}

// FuzzMetadata mutates the JSON metadata of valid checkpoints (the
// compression of every layer, the architecture), not their bytes, which
// byte-level fuzzing rarely reaches past the header's syntax: whatever the
// metadata says, loading either fails with an error or gives a model that
// evaluates, exports dense and compresses without a panic. (A changed byte in
// "bits" or "mode" once panicked eval, export and run.)
func FuzzMetadata(f *testing.F) {
	files := fuzzFiles()
	// The audit's cases, and their neighbours: every from/to pair of one key.
	var edits [][2]string
	for _, from := range []string{`"bits":4`, `"bits":8`, `"bits":3`, `"mode":"static"`, `"scheme":"asymmetric"`, `"granularity":"per_channel"`, `"rank":4`} {
		for _, to := range []string{`"bits":0`, `"bits":-3`, `"bits":64`, `"mode":"dynamix"`, `"scheme":"asymetric"`, `"granularity":""`, `"rank":-1`, `"rank":100`} {
			if strings.SplitN(from, ":", 2)[0] == strings.SplitN(to, ":", 2)[0] {
				edits = append(edits, [2]string{from, to})
			}
		}
	}
	metaseed.Add(f, files, metadataKeys, edits)
	f.Fuzz(func(t *testing.T, which, key uint8, value string) {
		b := files[int(which)%len(files)]
		c, err := checkpoint.Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		c.Metadata[metadataKeys[int(key)%len(metadataKeys)]] = value
		m, err := model.FromFile(c, nil)
		if err != nil {
			return
		}
		if _, err := model.Evaluate(context.Background(), m, testSplit(m.Spec, 3), 2); err != nil {
			return
		}
		d, _, err := Dense(m, c.Metadata)
		if err != nil {
			return
		}
		if _, err := model.FromFile(d, nil); err != nil {
			t.Fatalf("the dense export of an accepted model does not load: %v", err)
		}
		back, err := m.ToFile(nil)
		if err != nil {
			return
		}
		enc, err := compress.Encode(back)
		if err != nil {
			t.Fatalf("an accepted model does not compress: %v", err)
		}
		if _, err := compress.Decode(enc); err != nil {
			t.Fatalf("an accepted model's compressed file does not decode: %v", err)
		}
	})
}
