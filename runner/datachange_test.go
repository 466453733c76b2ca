package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/pipeline"
)

// TestDataChangedAfterPlanningIsRefused: the stage keys hold the data's
// fingerprint as planned; rows read after a file was rewritten must not be
// trained on under those keys.
func TestDataChangedAfterPlanningIsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"x_f4_4d.npy", "x_u1_4d.npy", "y4_i8.npy"} {
		b, err := os.ReadFile(filepath.Join("..", "data", "testdata", "npy", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := data.DefaultConfig()
	cfg.Dataset = data.KindNPY
	cfg.Train = &data.Arrays{X: "x_f4_4d.npy", Y: "y4_i8.npy"}
	cfg.Test = &data.Arrays{X: "x_f4_4d.npy", Y: "y4_i8.npy"}
	recipe := &pipeline.Recipe{Data: &cfg, Dir: dir, Model: arch.Spec{Arch: "mlp", Inputs: 12, Hidden: []int{4}, Classes: 10}}

	for _, change := range []bool{false, true} {
		r := New(nil, recipe, Options{RunDir: filepath.Join(dir, "run"), Log: zerolog.Nop()})
		o := &dataOnce{cfg: &cfg, key: "data"}
		if _, err := o.fingerprint(r); err != nil {
			t.Fatal(err)
		}
		if change { // the training file is replaced by the test one after planning
			b, err := os.ReadFile(filepath.Join(dir, "x_u1_4d.npy"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "x_f4_4d.npy"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := o.dataset(r)
		switch {
		case !change && err != nil:
			t.Fatalf("unchanged data refused: %v", err)
		case change && (err == nil || !strings.Contains(err.Error(), "data changed while shrink was running") || !strings.Contains(err.Error(), "x_f4_4d.npy")):
			t.Fatalf("rewritten data: %v, want an error naming the change and the file", err)
		}
	}
}
