package quant

import (
	"strings"
	"testing"
)

// TestSpecValidate: a spec read from a file is checked before Range shifts by
// its bits (bits 0 once panicked eval with a negative shift).
func TestSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string // "" when valid
	}{
		{Spec{8, Symmetric, PerTensor, false}, ""},
		{Spec{1, Asymmetric, PerChannel, false}, ""},
		{Spec{0, Symmetric, PerTensor, false}, "bits 0: must be 1 to 8"},
		{Spec{-2, Symmetric, PerTensor, false}, "bits -2"},
		{Spec{64, Symmetric, PerTensor, false}, "bits 64"},
		{Spec{4, "asymetric", PerTensor, false}, `scheme "asymetric": must be symmetric or asymmetric`},
		{Spec{4, Symmetric, "per_row", false}, `granularity "per_row"`},
	} {
		t.Run(tc.spec.String(), func(t *testing.T) {
			err := tc.spec.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
