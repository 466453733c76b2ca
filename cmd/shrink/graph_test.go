package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGraphGolden prints the expanded DAG of testdata/graph/sweep.yaml before
// any run (every stage "run") in both formats and compares it with the golden
// files beside it. Regenerate with: go test ./cmd/shrink -run TestGraphGolden -update
// (testdata/script/graph.txtar checks the cached case after a real run).
func TestGraphGolden(t *testing.T) {
	for _, format := range []string{"dot", "mermaid"} {
		t.Run(format, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main([]string{"graph", "../../testdata/graph/sweep.yaml", "--format", format, "--run-dir", t.TempDir()}, nil, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			golden := filepath.Join("../../testdata/graph", "sweep."+format)
			if *update {
				if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if stdout.String() != string(want) {
				t.Errorf("graph differs from %s:\n--- got\n%s--- want\n%s", golden, stdout.String(), want)
			}
			if strings.Contains(stdout.String(), "· cached") {
				t.Error("a fresh run folder has no cached stage")
			}
		})
	}
}

func TestGraphBadFormat(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main([]string{"graph", "../../testdata/graph/sweep.yaml", "--format", "svg"}, nil, &stdout, &stderr)
	if code != exitInvalid || !strings.Contains(stderr.String(), `--format must be dot or mermaid, not "svg"`) {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}
