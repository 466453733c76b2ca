package stages

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/model"
)

// TestLoadStartRefusesNonFiniteWeights: a model.checkpoint holding a NaN or an
// infinity is refused with the file and the tensor named, instead of every
// stage computing garbage from it.
func TestLoadStartRefusesNonFiniteWeights(t *testing.T) {
	spec := arch.Spec{Arch: "mlp", Inputs: 4, Hidden: []int{3}, Classes: 2}
	for _, tc := range []struct {
		name  string
		value float32
		want  string
	}{
		{"finite", 1e38, ""},
		{"NaN", float32(math.NaN()), "tensor fc2.bias holds NaN (value 1 of 2)"},
		{"infinity", float32(math.Inf(-1)), "tensor fc2.bias holds -Inf (value 1 of 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := model.MustNew(spec, rand.New(rand.NewPCG(1, 2)))
			m.Layer("fc2").Params[0].Data[1] = tc.value
			path := filepath.Join(t.TempDir(), "start.safetensors")
			if _, err := m.Save(path, nil); err != nil {
				t.Fatal(err)
			}
			s := spec
			s.Checkpoint = path
			_, err := LoadStart(s)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "model.checkpoint "+path+": "+tc.want)):
				t.Fatalf("got %v; want %q", err, tc.want)
			}
		})
	}
}
