package pipeline

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/config"
)

// pickRef is a fan-in stage that also compares against another stage (like
// select's where: {accuracy: {relative_to: train}}).
type pickRef struct {
	Base string `json:"base"`
}

func (p *pickRef) References() []config.Ref {
	return []config.Ref{{Path: "base", Stage: p.Base}}
}

func fanInRegistry() testRegistry {
	r := maps.Clone(reg)
	r["pickref"] = StageType{Name: "pickref", New: func() any { return &pickRef{} }, FanIn: true}
	return r
}

func parseFanIn(t *testing.T, stages string) (*Recipe, error) {
	t.Helper()
	return Parse("r.yaml", []byte(head+stages), fanInRegistry(), Options{})
}

func TestFanInReferenceResolvesToTheOnlyBranch(t *testing.T) {
	r, err := parseFanIn(t, `
  train: {type: xform}
  prune: {type: xform, needs: [train], matrix: {amount: [0.5, 0.9]}}
  best: {type: pickref, needs: [prune], base: train}
`)
	if err != nil {
		t.Fatal(err)
	}
	best := r.Stage("best")
	if best.Ref("base") != "train" {
		t.Fatalf("base reference resolved to %q, want train", best.Ref("base"))
	}
	if !slices.Equal(best.Deps(), []string{"prune[amount=0.5]", "prune[amount=0.9]", "train"}) {
		t.Errorf("deps %v", best.Deps())
	}
}

func TestFanInReferenceToABranchedStageIsAnError(t *testing.T) {
	_, err := parseFanIn(t, `
  train: {type: xform, matrix: {epochs: [1, 2]}}
  prune: {type: xform, needs: [train]}
  best:
    type: pickref
    needs: [prune]
    base: train
`)
	want := `r.yaml:12:11: stages.best.base: stage "train" has 2 branches (from a matrix); a pickref stage does not fan out, so refer to a stage with one branch`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestFanInNeedsAreInRunOrder(t *testing.T) {
	// Listed b before a, but a runs first: the candidates come in run order, so
	// ties go to the stage that ran first.
	r := mustParse(t, `
  a: {type: xform, matrix: {epochs: [2, 1]}}
  b: {type: xform}
  best: {type: pick, needs: [b, a]}
`)
	want := []string{"a[epochs=2]", "a[epochs=1]", "b"}
	if got := r.Stage("best").Needs; !slices.Equal(got, want) {
		t.Fatalf("needs %v, want %v", got, want)
	}
}

func TestFanInNeedsListedTwice(t *testing.T) {
	_, err := parse(t, "  a: {type: xform}\n  best: {type: pick, needs: [a, a]}\n", Options{})
	want := `r.yaml:7:33: stages.best.needs.1: "a" is listed twice`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestFanOutAfterSelectAndThroughTwoMatrices(t *testing.T) {
	// Two matrices in a row multiply; a stage reading the quantized branch and
	// the dense model follows one branch; the select joins them all and what
	// follows it runs once.
	r := mustParse(t, `
  train: {type: xform}
  prune: {type: xform, needs: [train], matrix: {amount: [0.9, 0.5]}}
  quant: {type: xform, needs: [prune], matrix: {method: [a, b]}}
  tune: {type: teach, needs: [quant], teacher: train}
  best: {type: pick, needs: [tune]}
  final: {type: teach, needs: [best], teacher: train}
`)
	want := []string{
		"train",
		"prune[amount=0.9]", "prune[amount=0.5]",
		"quant[amount=0.9,method=a]", "quant[amount=0.9,method=b]", "quant[amount=0.5,method=a]", "quant[amount=0.5,method=b]",
		"tune[amount=0.9,method=a]", "tune[amount=0.9,method=b]", "tune[amount=0.5,method=a]", "tune[amount=0.5,method=b]",
		"best", "final",
	}
	if got := ids(r); !slices.Equal(got, want) {
		t.Fatalf("ids\n got %v\nwant %v", got, want)
	}
	tune := r.Stage("tune[amount=0.5,method=a]")
	if !slices.Equal(tune.Needs, []string{"quant[amount=0.5,method=a]"}) || tune.Ref("teacher") != "train" {
		t.Errorf("tune reads %v, teacher %s", tune.Needs, tune.Ref("teacher"))
	}
	if got := r.Stage("best").Needs; len(got) != 4 || got[0] != "tune[amount=0.9,method=a]" || got[3] != "tune[amount=0.5,method=b]" {
		t.Errorf("select needs %v", got)
	}
	final := r.Stage("final")
	if !slices.Equal(final.Needs, []string{"best"}) || final.Ref("teacher") != "train" {
		t.Errorf("final reads %v, teacher %s", final.Needs, final.Ref("teacher"))
	}
}

func TestReferenceThatIsNotAStageID(t *testing.T) {
	// Before this check, expand panicked on the unresolvable edge.
	_, err := parse(t, "  a: {type: xform}\n  b: {type: teach, needs: [a], teacher: 'Big A'}\n", Options{})
	want := `stages.b.teacher: "Big A" is not a stage id`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
