package selection

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
)

func decode(t *testing.T, raw map[string]any) (*Config, config.Errors) {
	t.Helper()
	c := &Config{}
	return c, config.Decode(raw, c)
}

func mustDecode(t *testing.T, raw map[string]any) *Config {
	t.Helper()
	c, errs := decode(t, raw)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return c
}

// candidates are metrics.json contents as the runner hands them over
// (decoded JSON: numbers are float64).
var candidates = map[string]map[string]any{
	"q[amount=0.5,bits=8]": {"accuracy": 0.981, "size_bytes": 270000.0, "params_nonzero": 133000.0},
	"q[amount=0.5,bits=4]": {"accuracy": 0.975, "size_bytes": 140000.0, "params_nonzero": 133000.0},
	"q[amount=0.9,bits=8]": {"accuracy": 0.979, "size_bytes": 270000.0, "params_nonzero": 27000.0},
	"q[amount=0.9,bits=4]": {"accuracy": 0.969, "size_bytes": 140000.0, "params_nonzero": 27000.0},
	"train":                {"accuracy": 0.982, "size_bytes": 1066984.0, "params_nonzero": 266610.0},
}

var order = []string{"q[amount=0.5,bits=8]", "q[amount=0.5,bits=4]", "q[amount=0.9,bits=8]", "q[amount=0.9,bits=4]"}

func TestDecide(t *testing.T) {
	rel := func(min float64) map[string]any {
		return map[string]any{"accuracy": map[string]any{"relative_to": "train", "min": min}}
	}
	tests := []struct {
		name string
		raw  map[string]any
		want string
	}{
		{"max accuracy", map[string]any{"metric": "accuracy", "goal": "max"}, "q[amount=0.5,bits=8]"},
		{"min size: a tie goes to the first in run order", map[string]any{"metric": "size_bytes", "goal": "min"}, "q[amount=0.5,bits=4]"},
		{"min size, then nonzero", map[string]any{"metric": []any{"size_bytes", "params_nonzero"}, "goal": "min"}, "q[amount=0.9,bits=4]"},
		{"within 1 point of train", map[string]any{"metric": []any{"size_bytes", "params_nonzero"}, "goal": "min", "where": rel(-0.01)}, "q[amount=0.5,bits=4]"},
		{"within 0.5 points of train", map[string]any{"metric": []any{"size_bytes", "params_nonzero"}, "goal": "min", "where": rel(-0.005)}, "q[amount=0.9,bits=8]"},
		{"absolute bounds", map[string]any{"metric": "accuracy", "goal": "max", "where": map[string]any{"size_bytes": map[string]any{"max": 200000}}}, "q[amount=0.5,bits=4]"},
		{"min and max", map[string]any{"metric": "accuracy", "goal": "min", "where": map[string]any{"size_bytes": map[string]any{"min": 200000, "max": 300000}}}, "q[amount=0.9,bits=8]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustDecode(t, tt.raw)
			limits, err := c.limits(map[string]ref{"accuracy": {stage: "train", metrics: candidates["train"]}})
			if err != nil {
				t.Fatal(err)
			}
			d := c.decide(order, candidates, limits)
			if d.Selected != tt.want {
				t.Fatalf("selected %q, want %q; candidates %+v", d.Selected, tt.want, d.Candidates)
			}
		})
	}
}

func TestRejectionsSayWhy(t *testing.T) {
	c := mustDecode(t, map[string]any{"metric": "size_bytes", "goal": "min", "where": map[string]any{
		"accuracy": map[string]any{"relative_to": "train", "min": -0.005, "max": 0.1},
	}})
	limits, err := c.limits(map[string]ref{"accuracy": {stage: "train", metrics: candidates["train"]}})
	if err != nil {
		t.Fatal(err)
	}
	d := c.decide(order, candidates, limits)
	bad := d.Candidates[3]
	want := "accuracy 0.969 is below the minimum 0.977 (train's 0.982 - 0.005)"
	if bad.OK() || bad.Qualified || !d.Candidates[0].Qualified || len(bad.Failed) != 1 || bad.Failed[0] != want {
		t.Fatalf("failed %q, want %q", bad.Failed, want)
	}
	if v := bad.Values["accuracy"]; v != 0.969 {
		t.Errorf("the table lacks the constrained value: %v", bad.Values)
	}
}

func TestBoundsAreInclusive(t *testing.T) {
	// 0.8375 - 0.05 is 0.7875000000000001 in float64: a candidate at exactly
	// 0.7875 is within 5 points and must pass.
	base, off := 0.8375, -0.05
	min := base + off
	l := Limit{Min: &min, RelativeTo: "train", Base: &base, Offsets: &[2]*float64{&off, nil}}
	if why := l.check("accuracy", 0.7875); why != "" {
		t.Fatalf("rejected at the bound: %s", why)
	}
	if why := l.check("accuracy", 0.7874); why == "" {
		t.Fatal("accepted below the bound")
	}
}

func TestMissingMetricRejectsTheCandidate(t *testing.T) {
	c := mustDecode(t, map[string]any{"metric": "compressed_bytes", "goal": "min"})
	d := c.decide(order[:1], candidates, nil)
	if d.Selected != "" {
		t.Fatalf("selected %s without the metric", d.Selected)
	}
	got := c.noneQualified(d).Error()
	want := "no candidate qualifies: q[amount=0.5,bits=8]: has no metric compressed_bytes (its metrics.json has accuracy, params_nonzero, size_bytes); check the metric names against the candidates' metrics.json"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestNestedMetrics(t *testing.T) {
	m := map[string]any{"layers": map[string]any{"fc1": map[string]any{"bits": 4.0}}, "method": "l1"}
	if v, err := value(m, "layers.fc1.bits"); err != nil || v != 4 {
		t.Fatalf("layers.fc1.bits: %v %v", v, err)
	}
	if _, err := value(m, "layers.fc9.bits"); err == nil {
		t.Error("a missing nested key was read")
	}
	if _, err := value(m, "method"); err == nil || !strings.Contains(err.Error(), "not a number") {
		t.Errorf("a string metric: %v", err)
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"goal": "max"}, "metric: missing: name the metrics.json key to rank by"},
		{map[string]any{"metric": "accuracy"}, "goal: missing: max (the largest value wins"},
		{map[string]any{"metric": []any{}, "goal": "min"}, "metric: the list is empty"},
		{map[string]any{"metric": []any{"size bytes"}, "goal": "min"}, `metric.0: "size bytes" is not a metrics.json key`},
		{map[string]any{"metric": 3, "goal": "min"}, "metric: must be a metrics.json key (metric: accuracy) or a list of them"},
		{map[string]any{"metric": "accuracy", "goal": "best"}, `goal: "best" is not one of max, min`},
		{map[string]any{"metric": "accuracy", "goal": "max", "where": map[string]any{"accuracy": map[string]any{}}}, "where.accuracy: give min, max or both"},
		{map[string]any{"metric": "accuracy", "goal": "max", "where": map[string]any{"accuracy": map[string]any{"relative_to": "train"}}}, "where.accuracy: give min, max or both"},
		{map[string]any{"metric": "accuracy", "goal": "max", "where": map[string]any{"accuracy": map[string]any{"min": 0.9, "max": 0.8}}}, "where.accuracy.min: 0.9 is above max 0.8"},
		{map[string]any{"metric": "accuracy", "goal": "max", "where": map[string]any{"accuracy": map[string]any{"minimum": 0.9}}}, "where.accuracy.minimum: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, errs := decode(t, tt.raw)
			if !strings.Contains(errs.Error(), tt.want) {
				t.Fatalf("got %v\nwant %s", errs, tt.want)
			}
		})
	}
}

func TestReferencesAreTheRelativeStages(t *testing.T) {
	c := mustDecode(t, map[string]any{"metric": "size_bytes", "goal": "min", "where": map[string]any{
		"size_bytes": map[string]any{"max": 1e6},
		"accuracy":   map[string]any{"relative_to": "train", "min": -0.005},
		"loss":       map[string]any{"relative_to": "dense", "max": 0.01},
	}})
	refs := c.References()
	if len(refs) != 2 || refs[0] != (config.Ref{Path: "where.accuracy.relative_to", Stage: "train"}) || refs[1].Stage != "dense" {
		t.Fatalf("references %v", refs)
	}
}

func TestRunPassesTheWinnerThrough(t *testing.T) {
	c := mustDecode(t, map[string]any{"metric": []any{"size_bytes", "params_nonzero"}, "goal": "min", "where": map[string]any{
		"accuracy": map[string]any{"relative_to": "train", "min": -0.005},
	}})
	ctx := &stages.Context{
		Log:          zerolog.Nop(),
		Stage:        &pipeline.Stage{ID: "best", Needs: order, Refs: []config.Ref{{Path: "where.accuracy.relative_to", Stage: "train"}}},
		InputMetrics: candidates,
		Refs:         map[string]string{"where.accuracy.relative_to": "train"},
	}
	res, err := c.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.SameAs != "q[amount=0.9,bits=8]" || res.Metrics["selected"] != res.SameAs {
		t.Fatalf("output %q, metrics %v", res.SameAs, res.Metrics)
	}
	want := "q[amount=0.9,bits=8] has the smallest size_bytes 270000, then params_nonzero 27000 among the 2 of 4 candidate(s) that meet accuracy >= 0.977"
	if res.Metrics["reason"] != want {
		t.Errorf("reason %q\nwant   %q", res.Metrics["reason"], want)
	}
	if got := res.Metrics["candidates"].([]*Candidate); len(got) != 4 || got[1].OK() {
		t.Errorf("candidates %+v", got)
	}

	// Nothing within 0.1 point: the stage fails, naming every candidate.
	c.Where["accuracy"].Min = ptr(-0.0001)
	_, err = c.Run(ctx)
	if err == nil {
		t.Fatal("no candidate qualifies, yet the stage succeeded")
	}
	for _, want := range []string{
		"no candidate qualifies (constraints: accuracy >= 0.9819): ",
		"q[amount=0.5,bits=8]: accuracy 0.981 is below the minimum 0.9819 (train's 0.982 - 0.0001); ",
		"q[amount=0.9,bits=4]: accuracy 0.969 is below the minimum 0.9819 (train's 0.982 - 0.0001); loosen where or widen the matrix",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestRelativeStageWithoutTheMetric(t *testing.T) {
	c := mustDecode(t, map[string]any{"metric": "size_bytes", "goal": "min", "where": map[string]any{
		"accuracy": map[string]any{"relative_to": "train", "min": -0.005},
	}})
	_, err := c.limits(map[string]ref{"accuracy": {stage: "train", metrics: map[string]any{"size_bytes": 1.0}}})
	if err == nil || err.Error() != "where.accuracy.relative_to: stage train has no metric accuracy (its metrics.json has size_bytes)" {
		t.Fatalf("got %v", err)
	}
}

func ptr(x float64) *float64 { return &x }
