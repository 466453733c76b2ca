package prune_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
)

// TestValidateMessages checks what shrink validate prints for prune mistakes:
// one message per problem, at the key's line and column.
func TestValidateMessages(t *testing.T) {
	const head = `version: 1
name: t
model: {arch: mlp, inputs: 16, hidden: [8], classes: 4}
data: {dataset: synthetic, features: 16, classes: 4}
stages:
  p:
    type: prune
`
	tests := []struct {
		name, stage, want string
	}{
		{"fraction above one", "    method: l1_unstructured\n    amount: 1.5\n",
			"recipe.yaml:9:13: stages.p.amount: a fraction must be in [0, 1], got 1.5; to prune a count write an integer"},
		{"integral float", "    method: l1_unstructured\n    amount: 100.0\n",
			"recipe.yaml:9:13: stages.p.amount: a fraction must be in [0, 1], got 100.0; to prune 100 units write the integer 100 (no decimal point)"},
		{"negative", "    method: l1_unstructured\n    amount: -2\n",
			"recipe.yaml:9:13: stages.p.amount: -2 is below the minimum 0"},
		{"norm", "    method: ln_structured\n    amount: 2\n    n: 0\n",
			"recipe.yaml:10:8: stages.p.n: must be a positive number (1, 2, ...), inf, -inf or fro, got 0"},
		{"misplaced key", "    method: global_unstructured\n    amount: 0.5\n    rounds: 3\n",
			"recipe.yaml:10:13: stages.p.rounds: applies only to method lottery_ticket, not global_unstructured"},
		{"rewind", "    method: lottery_ticket\n    rewind: start\n",
			`recipe.yaml:9:13: stages.p.rewind: must be init or {epoch: K}, got the string "start"`},
		{"best_val without a validation split", "    method: lottery_ticket\n    select: best_val\n",
			"recipe.yaml:9:13: stages.p.select: best_val picks the round by validation accuracy: set data.validation_split (for example 0.1), or use select: last"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "recipe.yaml")
			if err := os.WriteFile(path, []byte(head+tt.stage), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := pipeline.Load(path, stages.Default, pipeline.Options{})
			if err == nil {
				t.Fatalf("valid; want %s", tt.want)
			}
			got := strings.ReplaceAll(err.Error(), filepath.Dir(path)+string(filepath.Separator), "")
			if got != tt.want {
				t.Errorf("got\n  %s\nwant\n  %s", got, tt.want)
			}
		})
	}
}
