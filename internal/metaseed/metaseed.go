// Package metaseed seeds the fuzzers that mutate checkpoint metadata
// (export's and infer's FuzzMetadata). Only tests import it; it depends on
// checkpoint alone, so export's own tests can use it.
package metaseed

import (
	"bytes"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
)

// Add seeds a metadata fuzzer (export's and infer's
// FuzzMetadata, arguments which, key, value) with each file's metadata
// value under each key, and the value with each edit (old, new) applied
// once where it holds old.
func Add(f *testing.F, files [][]byte, keys []string, edits [][2]string) {
	f.Helper()
	for i, b := range files {
		c, err := checkpoint.Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			f.Fatal(err)
		}
		for k, key := range keys {
			v := c.Metadata[key]
			f.Add(uint8(i), uint8(k), v)
			for _, e := range edits {
				if strings.Contains(v, e[0]) {
					f.Add(uint8(i), uint8(k), strings.Replace(v, e[0], e[1], 1))
				}
			}
		}
	}
}
