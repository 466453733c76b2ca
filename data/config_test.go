package data

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestDefaultConfigValidates(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{KindSynthetic} {
		c.Dataset = kind
		if err := c.Validate(); err != nil {
			t.Fatalf("%s with defaults: %v", kind, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	idx := func(c *Config) {
		c.Dataset = KindIDX
		c.TrainImages, c.TrainLabels, c.TestImages, c.TestLabels = "a", "b", "c", "d"
	}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // "" for valid
		msg   string
	}{
		{"mnist defaults", func(c *Config) {}, "", ""},
		{"mnist with path", func(c *Config) { c.Path = "mnist" }, "", ""},
		{"mnist normalize", func(c *Config) { c.Normalize = &Normalize{Mean: Channels{0.5}, Std: Channels{0.5}} }, "", ""},
		{"idx complete", idx, "", ""},
		{"idx 26 classes", func(c *Config) { idx(c); c.Classes = 26 }, "", ""},
		{"synthetic", func(c *Config) { c.Dataset = KindSynthetic; c.Features = 4; c.Classes = 3; c.Samples = 10 }, "", ""},
		{"validation split", func(c *Config) { c.ValidationSplit = 0.1 }, "", ""},

		{"no dataset", func(c *Config) { c.Dataset = "" }, "dataset", "missing"},
		{"unknown dataset", func(c *Config) { c.Dataset = "cifar" }, "dataset", `unknown dataset "cifar"`},
		{"batch size 0", func(c *Config) { c.BatchSize = 0 }, "batch_size", "at least 1"},
		{"eval batch size 0", func(c *Config) { c.EvalBatchSize = 0 }, "eval_batch_size", "at least 1"},
		{"split 1", func(c *Config) { c.ValidationSplit = 1 }, "validation_split", "[0, 1)"},
		{"split negative", func(c *Config) { c.ValidationSplit = -0.1 }, "validation_split", "[0, 1)"},
		{"split NaN", func(c *Config) { c.ValidationSplit = math.NaN() }, "validation_split", "[0, 1)"},
		{"std 0", func(c *Config) { c.Normalize = &Normalize{Mean: Channels{0}, Std: Channels{0}} }, "normalize.std", "std must be a positive"},
		{"mean inf", func(c *Config) { c.Normalize = &Normalize{Mean: Channels{math.Inf(1)}, Std: Channels{1}} }, "normalize.mean", "mean must be a finite"},
		{"idx missing test labels", func(c *Config) { idx(c); c.TestLabels = "" }, "test_labels", "idx needs train_images, train_labels, test_images and test_labels; test_labels is missing"},
		{"idx missing all", func(c *Config) { c.Dataset = KindIDX }, "train_images", "idx needs train_images"},
		{"idx with path", func(c *Config) { idx(c); c.Path = "x" }, "path", "path applies only to mnist"},
		{"idx too many classes", func(c *Config) { idx(c); c.Classes = 300 }, "classes", "at most 256"},
		{"synthetic with path", func(c *Config) { c.Dataset = KindSynthetic; c.Path = "x" }, "path", "path applies only to mnist"},
		{"mnist with train_images", func(c *Config) { c.TrainImages = "x" }, "train_images", "apply only to idx"},
		{"synthetic with test_labels", func(c *Config) { c.Dataset = KindSynthetic; c.TestLabels = "x" }, "test_labels", "apply only to idx"},
		{"synthetic normalize", func(c *Config) { c.Dataset = KindSynthetic; c.Normalize = &Normalize{Std: Channels{1}} }, "normalize", "applies only to mnist, fashion-mnist, idx and npy"},
		{"synthetic features 0", func(c *Config) { c.Dataset = KindSynthetic; c.Features = 0 }, "features", "at least 1"},
		{"synthetic samples 9", func(c *Config) { c.Dataset = KindSynthetic; c.Samples = 9 }, "samples", "at least 10"},
		{"synthetic classes 1", func(c *Config) { c.Dataset = KindSynthetic; c.Classes = 1 }, "classes", "at least 2"},
		{"synthetic more classes than samples", func(c *Config) { c.Dataset = KindSynthetic; c.Classes = 20; c.Samples = 10 }, "classes", "one sample per class"},
		{"synthetic too large", func(c *Config) { c.Dataset = KindSynthetic; c.Features = 1 << 20; c.Samples = 1 << 20 }, "samples", "too large"},
		{"mnist features", func(c *Config) { c.Features = 784 }, "features", "features applies only to synthetic"},
		{"mnist samples", func(c *Config) { c.Samples = 5 }, "samples", "samples applies only to synthetic"},
		{"mnist classes", func(c *Config) { c.Classes = 12 }, "classes", "mnist has 10 classes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v (%T); want a *FieldError", err, err)
			}
			if fe.Path != tt.field || !strings.Contains(fe.Msg, tt.msg) {
				t.Fatalf("got field %q msg %q; want field %q msg containing %q", fe.Path, fe.Msg, tt.field, tt.msg)
			}
			if err.Error() != fe.Path+": "+fe.Msg {
				t.Fatalf("Error() = %q", err.Error())
			}
		})
	}
}
