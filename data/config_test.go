package data

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/config"
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
	npy := func(c *Config) {
		c.Dataset = KindNPY
		c.Train = &Arrays{X: "x.npy", Y: "y.npy"}
		c.Test = &Arrays{X: "xt.npy", Y: "yt.npy"}
	}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // "" for valid
		msg   string
	}{
		{"fashion-mnist", func(c *Config) { c.Dataset = KindFashionMNIST }, "", ""},
		{"fashion-mnist with path", func(c *Config) { c.Dataset = KindFashionMNIST; c.Path = "f" }, "", ""},
		{"fashion-mnist sequence", func(c *Config) { c.Dataset = KindFashionMNIST; c.Layout = LayoutSequence }, "", ""},
		{"mnist sequence", func(c *Config) { c.Layout = LayoutSequence }, "", ""},
		{"idx sequence", func(c *Config) { idx(c); c.Layout = LayoutSequence }, "", ""},
		{"layout unset", func(c *Config) { c.Layout = "" }, "", ""},
		{"mnist normalize list of one", func(c *Config) { c.Normalize = &Normalize{Mean: Channels{0.5}, Std: Channels{0.5}} }, "", ""},
		{"mnist normalize std only", func(c *Config) { c.Normalize = &Normalize{Std: Channels{0.5}} }, "", ""},
		{"npy", npy, "", ""},
		{"npy normalize lists", func(c *Config) { npy(c); c.Normalize = &Normalize{Mean: Channels{1, 2, 3}, Std: Channels{4, 5, 6}} }, "", ""},
		{"npy normalize list and number", func(c *Config) { npy(c); c.Normalize = &Normalize{Mean: Channels{1, 2, 3}, Std: Channels{4}} }, "", ""},
		{"npy classes unset", func(c *Config) { npy(c); c.Classes = 0 }, "", ""},
		{"npy validation split", func(c *Config) { npy(c); c.ValidationSplit = 0.1 }, "", ""},

		{"fashion-mnist classes", func(c *Config) { c.Dataset = KindFashionMNIST; c.Classes = 5 }, "classes", "fashion-mnist has 10 classes, got 5"},
		{"fashion-mnist features", func(c *Config) { c.Dataset = KindFashionMNIST; c.Features = 5 }, "features", "features applies only to synthetic"},
		{"fashion-mnist train_images", func(c *Config) { c.Dataset = KindFashionMNIST; c.TrainImages = "a" }, "train_images", "apply only to idx; fashion-mnist takes path (or none, to use the Debian package's copy)"},
		{"npy missing test", func(c *Config) { npy(c); c.Test = nil }, "test", "npy needs train and test, each {x: FILE.npy, y: FILE.npy}; test is missing"},
		{"npy missing train", func(c *Config) { npy(c); c.Train = nil }, "train", "train is missing"},
		{"npy missing train.x", func(c *Config) { npy(c); c.Train.X = "" }, "train.x", "missing: the .npy file of the inputs"},
		{"npy missing test.y", func(c *Config) { npy(c); c.Test.Y = "" }, "test.y", "missing: the .npy file of the labels"},
		{"npy classes", func(c *Config) { npy(c); c.Classes = 5 }, "classes", "classes does not apply to npy: the labels must be below model.classes"},
		{"npy path", func(c *Config) { npy(c); c.Path = "p" }, "path", "path applies only to mnist and fashion-mnist; npy takes train: {x, y} and test: {x, y}"},
		{"npy features", func(c *Config) { npy(c); c.Features = 3 }, "features", "npy takes its feature count from the shape of x"},
		{"npy train_labels", func(c *Config) { npy(c); c.TrainLabels = "l" }, "train_labels", "apply only to idx"},
		{"npy sequence", func(c *Config) { npy(c); c.Layout = LayoutSequence }, "layout", "layout applies only to mnist, fashion-mnist and idx images; npy samples keep their own shape"},
		{"synthetic sequence", func(c *Config) { c.Dataset = KindSynthetic; c.Layout = LayoutSequence }, "layout", "applies only to mnist"},
		{"unknown layout", func(c *Config) { c.Layout = "columns" }, "layout", `unknown layout "columns": choose image or sequence`},
		{"mnist with train", func(c *Config) { c.Train = &Arrays{X: "x"} }, "train", "train and test apply only to npy; mnist takes path"},
		{"idx with test", func(c *Config) { idx(c); c.Test = &Arrays{X: "x"} }, "test", "train and test apply only to npy; idx takes train_images"},
		{"mnist normalize list", func(c *Config) { c.Normalize = &Normalize{Mean: Channels{0.1, 0.2}, Std: Channels{1}} }, "normalize", "mnist images have one channel: give one mean and one std"},
		{"normalize no std", func(c *Config) { npy(c); c.Normalize = &Normalize{Mean: Channels{0.1}} }, "normalize.std", "missing"},
		{"normalize std below float32", func(c *Config) { npy(c); c.Normalize = &Normalize{Mean: Channels{0}, Std: Channels{1e-50}} }, "normalize.std", "std 1e-50 is 0 in float32"},
		{"normalize std beyond float32", func(c *Config) { npy(c); c.Normalize = &Normalize{Mean: Channels{0}, Std: Channels{1e39}} }, "normalize.std", "std 1e+39 is +Inf in float32"},
		{"normalize mean beyond float32", func(c *Config) { npy(c); c.Normalize = &Normalize{Mean: Channels{0, -1e39}, Std: Channels{1}} }, "normalize.mean.1", "float32 holds"},
		{"normalize list lengths", func(c *Config) { npy(c); c.Normalize = &Normalize{Mean: Channels{1, 2, 3}, Std: Channels{1, 2}} }, "normalize.std", "2 values for 3 means"},
		{"normalize std item", func(c *Config) { npy(c); c.Normalize = &Normalize{Std: Channels{1, -2}} }, "normalize.std.1", "std must be a positive finite number, got -2"},
		{"normalize mean item", func(c *Config) { npy(c); c.Normalize = &Normalize{Mean: Channels{1, math.NaN()}, Std: Channels{1}} }, "normalize.mean.1", "mean must be a finite number"},
		{"unknown dataset lists all", func(c *Config) { c.Dataset = "cifar" }, "dataset", "choose mnist, fashion-mnist, idx, npy or synthetic"},

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

// The data section as the pipeline decodes it from YAML.
func TestDecodeDataSection(t *testing.T) {
	tests := []struct {
		name  string
		raw   map[string]any
		check func(*Config) bool
		field string // "" for valid
		msg   string
	}{
		{"npy with per-channel lists", map[string]any{
			"dataset": "npy", "train": map[string]any{"x": "a.npy", "y": "b.npy"}, "test": map[string]any{"x": "c.npy", "y": "d.npy"},
			"normalize": map[string]any{"mean": []any{0.5, 0.4, 1}, "std": 0.2},
		}, func(c *Config) bool {
			return *c.Train == Arrays{"a.npy", "b.npy"} && *c.Test == Arrays{"c.npy", "d.npy"} &&
				slices.Equal(c.Normalize.Mean, Channels{0.5, 0.4, 1}) && slices.Equal(c.Normalize.Std, Channels{0.2})
		}, "", ""},
		{"fashion-mnist sequence", map[string]any{"dataset": "fashion-mnist", "layout": "sequence", "normalize": map[string]any{"mean": 0, "std": 1}},
			func(c *Config) bool { return c.Layout == LayoutSequence && slices.Equal(c.Normalize.Mean, Channels{0}) }, "", ""},
		{"mean a string", map[string]any{"normalize": map[string]any{"mean": "a", "std": 1}}, nil,
			"normalize.mean", `must be a number or a non-empty list of numbers (one per channel), got the string "a"`},
		{"mean item a string", map[string]any{"dataset": "npy", "normalize": map[string]any{"mean": []any{0.1, "x"}, "std": 1}}, nil,
			"normalize.mean.1", `must be a number, got the string "x"`},
		{"std empty list", map[string]any{"normalize": map[string]any{"std": []any{}}}, nil, "normalize.std", "non-empty list"},
		{"npy test without y", map[string]any{"dataset": "npy", "train": map[string]any{"x": "a", "y": "b"}, "test": map[string]any{"x": "c"}}, nil,
			"test.y", "missing: the .npy file of the labels"},
		{"npy unknown key", map[string]any{"dataset": "npy", "train": map[string]any{"x": "a", "labels": "b"}}, nil, "train.labels", "unknown key"},
		{"layout unknown", map[string]any{"layout": "rows"}, nil, "layout", `"rows" is not one of image, sequence`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			errs := config.Decode(tt.raw, &c)
			if tt.field == "" {
				if len(errs) > 0 {
					t.Fatal(errs)
				}
				if !tt.check(&c) {
					t.Fatalf("decoded %+v", c)
				}
				return
			}
			if len(errs) == 0 || errs[0].Path != tt.field || !strings.Contains(errs[0].Msg, tt.msg) {
				t.Fatalf("got %v; want %s: ...%s...", errs, tt.field, tt.msg)
			}
		})
	}
	// One value is written back as a number, several as a list.
	b, err := json.Marshal(Normalize{Mean: Channels{0.5}, Std: Channels{1, 2}})
	if err != nil || string(b) != `{"mean":0.5,"std":[1,2]}` {
		t.Fatalf("json %s, %v", b, err)
	}
	// The schema admits both forms, with std's bound.
	s := config.Schema(DefaultConfig())
	std := s["properties"].(map[string]any)["normalize"].(map[string]any)["properties"].(map[string]any)["std"].(map[string]any)
	if !reflect.DeepEqual(std["type"], []any{"number", "array"}) || std["exclusiveMinimum"] != 0 {
		t.Fatalf("std schema %v", std)
	}
}
