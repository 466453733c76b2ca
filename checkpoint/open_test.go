package checkpoint

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestForeignFormats: what torch.save writes, and shrink's own compressed
// files, are named with what to do, not reported as a header length.
func TestForeignFormats(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"../testdata/torch/state_dict.pt", "this is a zip archive, which is how torch.save writes a PyTorch pickle (.pt, .pth): save the state_dict with safetensors instead"},
		{"../testdata/torch/state_dict_legacy.pt", "this is a Python pickle (torch.save's legacy format"},
		{"../testdata/compressed/handmade.shkz", "this is a shrink compressed file (shrink export --format compressed)"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			_, err := ReadFile(tc.file)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "header length") {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
