package data

import (
	"fmt"
	"github.com/shrink-ml/shrink/config"
	"math"
)

// Dataset kinds accepted in Config.Dataset.
const (
	KindMNIST     = "mnist"
	KindIDX       = "idx"
	KindSynthetic = "synthetic"
)

// Default normalization: the MNIST training-set mean and standard deviation used by
// the PyTorch examples (transforms.Normalize((0.1307,), (0.3081,))).
const (
	DefaultMean = 0.1307
	DefaultStd  = 0.3081
)

// Config is the recipe's data section. Defaults are the values set by DefaultConfig.
type Config struct {
	Dataset         string     `json:"dataset" enum:"mnist,idx,synthetic" doc:"which dataset: mnist (the MNIST files shipped with the GoMNIST module, or data.path), idx (your own IDX files), synthetic (seeded Gaussian blobs)"`
	BatchSize       int        `json:"batch_size" minimum:"1" doc:"training batch size (rows per optimizer step); the last batch of an epoch may be shorter; part of every stage key"`
	EvalBatchSize   int        `json:"eval_batch_size" minimum:"1" doc:"batch size for evaluation passes; affects speed and memory, and the results of dynamically quantized models (their activation ranges are measured per batch), so it is part of every stage key"`
	Path            string     `json:"path,omitempty" doc:"mnist only: folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz; relative to the recipe's folder; empty finds the copy in the GoMNIST Go module (or $SHRINK_MNIST_DIR)"`
	TrainImages     string     `json:"train_images,omitempty" doc:"idx only: training images, an IDX file of unsigned bytes (magic 0x00000803), raw or gzip; relative to the recipe's folder"`
	TrainLabels     string     `json:"train_labels,omitempty" doc:"idx only: training labels, an IDX file of unsigned bytes (magic 0x00000801), raw or gzip; relative to the recipe's folder"`
	TestImages      string     `json:"test_images,omitempty" doc:"idx only: test images, same format and image size as train_images"`
	TestLabels      string     `json:"test_labels,omitempty" doc:"idx only: test labels, same format as train_labels"`
	ValidationSplit float64    `json:"validation_split" minimum:"0" exclusiveMaximum:"1" doc:"fraction of the training rows held out as a validation set: a random subset drawn from the recipe seed (rows keep their file order); 0 for none"`
	Normalize       *Normalize `json:"normalize,omitempty" doc:"mnist and idx only: pixel/255 is mapped to (x - mean)/std in float32, as torchvision's ToTensor and Normalize do; default mean 0.1307, std 0.3081"`
	Shuffle         bool       `json:"shuffle" doc:"reshuffle the training rows every epoch (a permutation drawn from the recipe seed)"`
	Features        int        `json:"features,omitempty" minimum:"1" doc:"synthetic only: number of input features"`
	Classes         int        `json:"classes,omitempty" minimum:"2" doc:"number of classes: synthetic, the number of blobs; idx, labels must be below it; mnist is always 10"`
	Samples         int        `json:"samples,omitempty" minimum:"10" doc:"synthetic only: total number of rows, split 80/20 into train and test"`
}

// Normalize is the per-pixel normalization applied after dividing by 255.
type Normalize struct {
	Mean float64 `json:"mean" doc:"subtracted from pixel/255"`
	Std  float64 `json:"std" exclusiveMinimum:"0" doc:"divides pixel/255 - mean"`
}

// DefaultConfig returns the data section's defaults: MNIST, batch size 128,
// evaluation batch size 1000, no validation split, shuffling on, and for
// synthetic data 32 features, 10 classes, 1000 samples.
func DefaultConfig() Config {
	return Config{
		Dataset:       KindMNIST,
		BatchSize:     128,
		EvalBatchSize: 1000,
		Shuffle:       true,
		Features:      32,
		Classes:       10,
		Samples:       1000,
	}
}

// FieldError is an invalid or inconsistent value in the data section. Path is
// the recipe key inside the data section (for example "train_images"), without a
// "data." prefix; Err, when set, is the underlying cause. The pipeline places it
// at the key's line and column.
type FieldError = config.FieldError

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Path: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks single values (ranges, as the JSON Schema does, for configs built
// in code) and the cross-field rules: which keys apply to which dataset, and that idx
// names all four files. It returns the first problem as a *FieldError.
func (c *Config) Validate() error {
	def := DefaultConfig()
	switch c.Dataset {
	case KindMNIST, KindIDX, KindSynthetic:
	case "":
		return fieldErr("dataset", "missing: choose mnist, idx or synthetic")
	default:
		return fieldErr("dataset", "unknown dataset %q: choose mnist, idx or synthetic", c.Dataset)
	}
	if c.BatchSize < 1 {
		return fieldErr("batch_size", "must be at least 1, got %d", c.BatchSize)
	}
	if c.EvalBatchSize < 1 {
		return fieldErr("eval_batch_size", "must be at least 1, got %d", c.EvalBatchSize)
	}
	if !(c.ValidationSplit >= 0 && c.ValidationSplit < 1) { // also rejects NaN
		return fieldErr("validation_split", "must be in [0, 1), got %v", c.ValidationSplit)
	}
	if c.Normalize != nil {
		if math.IsNaN(c.Normalize.Mean) || math.IsInf(c.Normalize.Mean, 0) {
			return fieldErr("normalize", "mean must be a finite number, got %v", c.Normalize.Mean)
		}
		if !(c.Normalize.Std > 0) || math.IsInf(c.Normalize.Std, 0) {
			return fieldErr("normalize", "std must be a positive finite number, got %v", c.Normalize.Std)
		}
	}

	if c.Path != "" && c.Dataset != KindMNIST {
		return fieldErr("path", "path applies only to mnist; %s takes %s", c.Dataset, keysFor(c.Dataset))
	}
	idxSet := c.TrainImages != "" || c.TrainLabels != "" || c.TestImages != "" || c.TestLabels != ""
	if c.Dataset != KindIDX && idxSet {
		return fieldErr(firstIDXKey(c), "train_images, train_labels, test_images and test_labels apply only to idx; %s takes %s", c.Dataset, keysFor(c.Dataset))
	}
	if c.Dataset == KindIDX {
		for _, f := range []struct{ key, val string }{
			{"train_images", c.TrainImages}, {"train_labels", c.TrainLabels},
			{"test_images", c.TestImages}, {"test_labels", c.TestLabels},
		} {
			if f.val == "" {
				return fieldErr(f.key, "idx needs train_images, train_labels, test_images and test_labels; %s is missing", f.key)
			}
		}
	}
	if c.Dataset == KindSynthetic {
		if c.Normalize != nil {
			return fieldErr("normalize", "normalize applies only to mnist and idx; synthetic features are generated at unit scale")
		}
		if c.Features < 1 {
			return fieldErr("features", "must be at least 1, got %d", c.Features)
		}
		if c.Samples < 10 {
			return fieldErr("samples", "must be at least 10, got %d", c.Samples)
		}
		if c.Samples > maxSyntheticValues/max(c.Features, 1) || c.Features > maxSyntheticValues {
			return fieldErr("samples", "samples × features = %d × %d is too large (at most %d values)", c.Samples, c.Features, maxSyntheticValues)
		}
	} else {
		// Features and samples describe synthetic data only; a value other than the
		// default most likely means the recipe meant dataset: synthetic.
		if c.Features != def.Features && c.Features != 0 {
			return fieldErr("features", "features applies only to synthetic; %s takes its feature count from the image size", c.Dataset)
		}
		if c.Samples != def.Samples && c.Samples != 0 {
			return fieldErr("samples", "samples applies only to synthetic; %s takes its row count from the files", c.Dataset)
		}
	}
	switch c.Dataset {
	case KindMNIST:
		if c.Classes != 10 && c.Classes != 0 {
			return fieldErr("classes", "mnist has 10 classes, got %d", c.Classes)
		}
	default:
		if c.Classes < 2 {
			return fieldErr("classes", "must be at least 2, got %d", c.Classes)
		}
		if c.Dataset == KindIDX && c.Classes > 256 {
			return fieldErr("classes", "idx labels are bytes, so at most 256 classes, got %d", c.Classes)
		}
		if c.Dataset == KindSynthetic && c.Classes > c.Samples {
			return fieldErr("classes", "synthetic needs at least one sample per class: %d classes, %d samples", c.Classes, c.Samples)
		}
	}
	return nil
}

// maxSyntheticValues bounds samples × features (1<<28 float32 = 1 GiB).
const maxSyntheticValues = 1 << 28

func keysFor(kind string) string {
	switch kind {
	case KindMNIST:
		return "path (or none, to use the GoMNIST module's copy)"
	case KindIDX:
		return "train_images, train_labels, test_images and test_labels"
	default:
		return "features, classes and samples"
	}
}

func firstIDXKey(c *Config) string {
	switch {
	case c.TrainImages != "":
		return "train_images"
	case c.TrainLabels != "":
		return "train_labels"
	case c.TestImages != "":
		return "test_images"
	default:
		return "test_labels"
	}
}

// normalization returns the mean and std in effect for image datasets.
// Known is what the data section says of its rows before any file is read:
// values per row and classes (0 when only the files tell, as for idx, whose
// data.classes only bounds the labels), and the keys that say so.
func (c *Config) Known() (features int, featuresKey string, classes int, classesKey string) {
	switch c.Dataset {
	case KindSynthetic:
		return c.Features, "data.features", c.Classes, "data.classes"
	case KindMNIST:
		return mnistRows * mnistCols, "data.dataset", mnistClasses, "data.dataset"
	}
	return 0, "", 0, ""
}

// classes bounds the labels: MNIST's 10, else data.classes.
func (c *Config) classes() int {
	if c.Dataset == KindMNIST {
		return mnistClasses
	}
	return c.Classes
}

func (c *Config) normalization() (mean, std float64) {
	if c.Normalize != nil {
		return c.Normalize.Mean, c.Normalize.Std
	}
	return DefaultMean, DefaultStd
}
