package config

import "testing"

func TestClosest(t *testing.T) {
	for _, tc := range []struct {
		word    string
		options []string
		want    string
	}{
		{"amuont", []string{"amount", "method", "layers"}, "amount"}, // transposition: one edit
		{"trian", []string{"train", "prune"}, "train"},
		{"fc4", []string{"fc1", "fc2", "fc3"}, ""},         // equally near: no guess
		{"fc", []string{"fc1", "conv1"}, "fc1"},            // short words allow one edit
		{"epochs", []string{"epochs", "epoch"}, "epoch"},   // itself is skipped
		{"learning_rate", []string{"lr", "optimizer"}, ""}, // too far
		{"x", nil, ""},
	} {
		if got := Closest(tc.word, tc.options); got != tc.want {
			t.Errorf("Closest(%q, %q) = %q, want %q", tc.word, tc.options, got, tc.want)
		}
	}
	if got := DidYouMean("trian", []string{"train"}); got != ` (did you mean "train"?)` {
		t.Errorf("DidYouMean = %q", got)
	}
}
