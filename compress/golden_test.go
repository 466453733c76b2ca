package compress

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
)

var update = flag.Bool("update", false, "rewrite testdata/compressed from its sources")

// goldenSources are the checkpoints whose compressed form is kept in
// testdata/compressed: files written by this version must stay readable.
var goldenSources = []string{
	"../testdata/oracle/quant4_asym_per_channel.safetensors",
	"../testdata/oracle/quant_asym_per_tensor.safetensors",
	"../testdata/oracle/prune_global_float.safetensors",
	"../testdata/oracle/lowrank_k3.safetensors",
	"../testdata/safetensors/golden_all_dtypes.safetensors",
	"../testdata/safetensors/handmade.safetensors",
}

const goldenDir = "../testdata/compressed"

func goldenPath(src string) string {
	return filepath.Join(goldenDir, strings.TrimSuffix(filepath.Base(src), ".safetensors")+".shkz")
}

// TestGolden decodes the stored compressed files: each must give back its
// source checkpoint byte for byte.
func TestGolden(t *testing.T) {
	for _, src := range goldenSources {
		t.Run(filepath.Base(src), func(t *testing.T) {
			want, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			f, err := checkpoint.Read(bytes.NewReader(want), int64(len(want)))
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if _, err := WriteFile(goldenPath(src), f); err != nil {
					t.Fatal(err)
				}
			}
			got, _, err := ReadFile(goldenPath(src))
			if err != nil {
				t.Fatal(err)
			}
			wantFile, _ := checkpoint.Marshal(f)
			gotFile, err := checkpoint.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(wantFile, gotFile) {
				t.Fatalf("%s does not decode to %s:\n%s", goldenPath(src), src, describeDiff(f, got))
			}
		})
	}
}
