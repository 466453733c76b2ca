package data

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/shrink-ml/shrink/config"
)

// Dataset kinds accepted in Config.Dataset.
const (
	KindMNIST        = "mnist"
	KindFashionMNIST = "fashion-mnist"
	KindIDX          = "idx"
	KindNPY          = "npy"
	KindSynthetic    = "synthetic"
)

// Layouts accepted in Config.Layout: how an image dataset presents one image.
const (
	LayoutImage    = "image"    // [1, rows, cols]: one channel (CHW), what convolutions take
	LayoutSequence = "sequence" // [rows, cols]: rows time steps of cols features, row by row
)

// Default normalization: the MNIST training-set mean and standard deviation used by
// the PyTorch examples (transforms.Normalize((0.1307,), (0.3081,))).
const (
	DefaultMean = 0.1307
	DefaultStd  = 0.3081
)

// Fashion-MNIST's training-set mean and standard deviation of pixel/255, the
// values PyTorch code usually passes to transforms.Normalize.
const (
	FashionMean = 0.2860
	FashionStd  = 0.3530
)

// Config is the recipe's data section. Defaults are the values set by DefaultConfig.
type Config struct {
	Dataset         string     `json:"dataset" enum:"mnist,fashion-mnist,idx,npy,synthetic" doc:"which dataset: mnist (the MNIST files shipped with the GoMNIST module, or data.path), fashion-mnist (the Debian package dataset-fashion-mnist, or data.path), idx (your own IDX files), npy (your own NumPy arrays: train and test), synthetic (seeded Gaussian blobs); see docs/DATA.md"`
	BatchSize       int        `json:"batch_size" minimum:"1" doc:"training batch size (rows per optimizer step); the last batch of an epoch may be shorter; part of every stage key"`
	EvalBatchSize   int        `json:"eval_batch_size" minimum:"1" doc:"batch size for evaluation passes; affects speed and memory, and the results of dynamically quantized models (their activation ranges are measured per batch), so it is part of every stage key"`
	Path            string     `json:"path,omitempty" doc:"mnist and fashion-mnist only: folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz; relative to the recipe's folder; empty finds mnist in the GoMNIST Go module (or $SHRINK_MNIST_DIR), fashion-mnist in /usr/share/datasets/fashion-mnist (or $SHRINK_FASHION_MNIST_DIR)"`
	TrainImages     string     `json:"train_images,omitempty" doc:"idx only: training images, an IDX file of unsigned bytes (magic 0x00000803), raw or gzip; relative to the recipe's folder"`
	TrainLabels     string     `json:"train_labels,omitempty" doc:"idx only: training labels, an IDX file of unsigned bytes (magic 0x00000801), raw or gzip; relative to the recipe's folder"`
	TestImages      string     `json:"test_images,omitempty" doc:"idx only: test images, same format and image size as train_images"`
	TestLabels      string     `json:"test_labels,omitempty" doc:"idx only: test labels, same format as train_labels"`
	Train           *Arrays    `json:"train,omitempty" doc:"npy only: the training set, {x: x_train.npy, y: y_train.npy}"`
	Test            *Arrays    `json:"test,omitempty" doc:"npy only: the test set, {x: x_test.npy, y: y_test.npy}, samples of the same shape and dtype as train"`
	Layout          string     `json:"layout" enum:"image,sequence" doc:"mnist, fashion-mnist and idx: image gives each sample the shape [1, rows, cols]; sequence gives [rows, cols], rows time steps of cols features (sequential MNIST); the values are the same"`
	ValidationSplit float64    `json:"validation_split" minimum:"0" exclusiveMaximum:"1" doc:"fraction of the training rows held out as a validation set: a random subset drawn from the recipe seed (rows keep their file order); 0 for none"`
	Normalize       *Normalize `json:"normalize,omitempty" doc:"mnist, fashion-mnist, idx and npy: x is mapped to (x - mean)/std in float32 after uint8 pixels are divided by 255, as torchvision's ToTensor and Normalize do; default mean 0.1307, std 0.3081 (mnist, idx), 0.2860, 0.3530 (fashion-mnist), none (npy)"`
	Shuffle         bool       `json:"shuffle" doc:"reshuffle the training rows every epoch (a permutation drawn from the recipe seed)"`
	Features        int        `json:"features,omitempty" minimum:"1" doc:"synthetic only: number of input features"`
	Classes         int        `json:"classes,omitempty" minimum:"2" doc:"number of classes: synthetic, the number of blobs; idx, labels must be below it; mnist and fashion-mnist are always 10; npy takes model.classes (leave it unset)"`
	Samples         int        `json:"samples,omitempty" minimum:"10" doc:"synthetic only: total number of rows, split 80/20 into train and test"`
}

// Arrays names the two .npy files of one split of an npy dataset.
type Arrays struct {
	X string `json:"x" doc:"the inputs: a .npy array [N, ...] of float32 or uint8 (one sample's shape is the model's input), or int32/int64 token ids [N, T]; relative to the recipe's folder"`
	Y string `json:"y" doc:"the labels: a .npy array [N] of int64, int32 or uint8, each in [0, model.classes)"`
}

// Normalize is the per-channel normalization (x - mean)/std, applied after uint8
// values are divided by 255. Mean and Std hold one value for every channel, or one
// value for all; an empty Mean means 0. Their recipe documentation is in
// ConfigSchema.
type Normalize struct {
	Mean Channels `json:"mean"`
	Std  Channels `json:"std"`
}

// Channels is a number or a list of numbers, one per channel.
type Channels []float64

var (
	_ config.Decoder = (*Channels)(nil)
	_ config.Schemer = (*Normalize)(nil)
)

// DecodeConfig accepts a number or a non-empty list of numbers.
func (c *Channels) DecodeConfig(raw any) error {
	if x, ok := config.AsFloat(raw); ok {
		*c = Channels{x}
		return nil
	}
	items, ok := raw.([]any)
	if !ok || len(items) == 0 {
		return fmt.Errorf("must be a number or a non-empty list of numbers (one per channel), got %s", config.Describe(raw))
	}
	out := make(Channels, len(items))
	for i, it := range items {
		x, ok := config.AsFloat(it)
		if !ok {
			return config.Errorf(fmt.Sprint(i), "must be a number, got %s", config.Describe(it))
		}
		out[i] = x
	}
	*c = out
	return nil
}

// MarshalJSON writes one value as a number, several as a list, as a recipe would.
func (c Channels) MarshalJSON() ([]byte, error) {
	if len(c) == 1 {
		return json.Marshal(c[0])
	}
	return json.Marshal([]float64(c))
}

// ConfigSchema describes mean and std as numbers or lists of numbers (the struct
// walk knows no union types).
func (*Normalize) ConfigSchema() map[string]any {
	chans := func(doc string, bound map[string]any) map[string]any {
		item := map[string]any{"type": "number"}
		s := map[string]any{"type": []any{"number", "array"}, "minItems": 1, "items": item, "description": doc}
		for k, v := range bound {
			item[k], s[k] = v, v
		}
		return s
	}
	return map[string]any{
		"type": "object", "additionalProperties": false,
		"properties": map[string]any{
			"mean": chans("subtracted from x (pixel/255 for uint8 data): a number, or a list with one per channel", nil),
			"std":  chans("divides x - mean: a positive number, or a list with one per channel", map[string]any{"exclusiveMinimum": 0}),
		},
	}
}

// at returns channel c's value of a list of 1 or more values (0 for an empty list).
func (c Channels) at(i int) float64 {
	switch len(c) {
	case 0:
		return 0
	case 1:
		return c[0]
	}
	return c[i]
}

// check reports the first bad value of a normalization, at its key.
func (n *Normalize) check() error {
	// Normalization is float32 arithmetic, as torchvision's: a mean or std
	// float32 cannot hold would make every value infinite, zero or NaN.
	for i, m := range n.Mean {
		if math.IsNaN(m) || math.IsInf(float64(float32(m)), 0) {
			return fieldErr(listKey("normalize.mean", n.Mean, i), "mean must be a finite number float32 holds (at most 3.4e38 in magnitude), got %v", m)
		}
	}
	if len(n.Std) == 0 {
		return fieldErr("normalize.std", "missing: give a positive number, or one per channel")
	}
	for i, s := range n.Std {
		if !(s > 0) || math.IsInf(s, 0) {
			return fieldErr(listKey("normalize.std", n.Std, i), "std must be a positive finite number, got %v", s)
		}
		if f := float32(s); f == 0 || math.IsInf(float64(f), 0) {
			return fieldErr(listKey("normalize.std", n.Std, i), "std %v is %v in float32, where inputs are normalized: give a std from 1.4e-45 to 3.4e38", s, f)
		}
	}
	if len(n.Mean) > 1 && len(n.Std) > 1 && len(n.Mean) != len(n.Std) {
		return fieldErr("normalize.std", "%d values for %d means: give as many std values as means (or one for all)", len(n.Std), len(n.Mean))
	}
	return nil
}

// channels is the number of channels a normalization names: 1 when every
// value applies to all channels.
func (n *Normalize) channels() int { return max(len(n.Mean), len(n.Std), 1) }

func listKey(key string, c Channels, i int) string {
	if len(c) > 1 {
		return fmt.Sprintf("%s.%d", key, i)
	}
	return key
}

// DefaultConfig returns the data section's defaults: MNIST, batch size 128,
// evaluation batch size 1000, image layout, no validation split, shuffling on,
// and for synthetic data 32 features, 10 classes, 1000 samples.
func DefaultConfig() Config {
	return Config{
		Dataset:       KindMNIST,
		BatchSize:     128,
		EvalBatchSize: 1000,
		Layout:        LayoutImage,
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

const kindList = "mnist, fashion-mnist, idx, npy or synthetic"

// isImages tells the datasets of 28x28-style IDX images (one channel).
func isImages(kind string) bool {
	return kind == KindMNIST || kind == KindFashionMNIST || kind == KindIDX
}

// Validate checks single values (ranges, as the JSON Schema does, for configs built
// in code) and the cross-field rules: which keys apply to which dataset, and that idx
// and npy name all their files. It returns the first problem as a *FieldError.
func (c *Config) Validate() error {
	def := DefaultConfig()
	switch c.Dataset {
	case KindMNIST, KindFashionMNIST, KindIDX, KindNPY, KindSynthetic:
	case "":
		return fieldErr("dataset", "missing: choose %s", kindList)
	default:
		return fieldErr("dataset", "unknown dataset %q: choose %s", c.Dataset, kindList)
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
	switch c.Layout {
	case "", LayoutImage:
	case LayoutSequence:
		if !isImages(c.Dataset) {
			return fieldErr("layout", "layout applies only to mnist, fashion-mnist and idx images; %s samples keep their own shape", c.Dataset)
		}
	default:
		return fieldErr("layout", "unknown layout %q: choose image or sequence", c.Layout)
	}
	if c.Normalize != nil {
		if err := c.Normalize.check(); err != nil {
			return err
		}
		switch {
		case c.Dataset == KindSynthetic:
			return fieldErr("normalize", "normalize applies only to mnist, fashion-mnist, idx and npy; synthetic features are generated at unit scale")
		case isImages(c.Dataset) && c.Normalize.channels() > 1:
			return fieldErr("normalize", "%s images have one channel: give one mean and one std", c.Dataset)
		}
	}

	if c.Path != "" && c.Dataset != KindMNIST && c.Dataset != KindFashionMNIST {
		return fieldErr("path", "path applies only to mnist and fashion-mnist; %s takes %s", c.Dataset, keysFor(c.Dataset))
	}
	idxSet := c.TrainImages != "" || c.TrainLabels != "" || c.TestImages != "" || c.TestLabels != ""
	if c.Dataset != KindIDX && idxSet {
		return fieldErr(firstIDXKey(c), "train_images, train_labels, test_images and test_labels apply only to idx; %s takes %s", c.Dataset, keysFor(c.Dataset))
	}
	if c.Dataset != KindNPY && (c.Train != nil || c.Test != nil) {
		key := "train"
		if c.Train == nil {
			key = "test"
		}
		return fieldErr(key, "train and test apply only to npy; %s takes %s", c.Dataset, keysFor(c.Dataset))
	}
	switch c.Dataset {
	case KindIDX:
		for _, f := range []struct{ key, val string }{
			{"train_images", c.TrainImages}, {"train_labels", c.TrainLabels},
			{"test_images", c.TestImages}, {"test_labels", c.TestLabels},
		} {
			if f.val == "" {
				return fieldErr(f.key, "idx needs train_images, train_labels, test_images and test_labels; %s is missing", f.key)
			}
		}
	case KindNPY:
		for _, s := range []struct {
			key string
			a   *Arrays
		}{{"train", c.Train}, {"test", c.Test}} {
			if s.a == nil {
				return fieldErr(s.key, "npy needs train and test, each {x: FILE.npy, y: FILE.npy}; %s is missing (a recipe used only to predict may name the test files as train too)", s.key)
			}
			if s.a.X == "" {
				return fieldErr(s.key+".x", "missing: the .npy file of the inputs")
			}
			if s.a.Y == "" {
				return fieldErr(s.key+".y", "missing: the .npy file of the labels")
			}
		}
	}
	if c.Dataset == KindSynthetic {
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
		what := "the image size"
		if c.Dataset == KindNPY {
			what = "the shape of x"
		}
		if c.Features != def.Features && c.Features != 0 {
			return fieldErr("features", "features applies only to synthetic; %s takes its feature count from %s", c.Dataset, what)
		}
		if c.Samples != def.Samples && c.Samples != 0 {
			return fieldErr("samples", "samples applies only to synthetic; %s takes its row count from the files", c.Dataset)
		}
	}
	switch c.Dataset {
	case KindMNIST, KindFashionMNIST:
		if c.Classes != 10 && c.Classes != 0 {
			return fieldErr("classes", "%s has 10 classes, got %d", c.Dataset, c.Classes)
		}
	case KindNPY:
		// The model's classes decide: the runner checks every label against it.
		if c.Classes != def.Classes && c.Classes != 0 {
			return fieldErr("classes", "classes does not apply to npy: the labels must be below model.classes, which the run checks; remove data.classes")
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
	case KindFashionMNIST:
		return "path (or none, to use the Debian package's copy)"
	case KindIDX:
		return "train_images, train_labels, test_images and test_labels"
	case KindNPY:
		return "train: {x, y} and test: {x, y}"
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

// Known is what the data section says of its rows before any file is read:
// values per row and classes (0 when only the files tell, as for idx, whose
// data.classes only bounds the labels, and npy), and the keys that say so.
func (c *Config) Known() (features int, featuresKey string, classes int, classesKey string) {
	switch c.Dataset {
	case KindSynthetic:
		return c.Features, "data.features", c.Classes, "data.classes"
	case KindMNIST, KindFashionMNIST:
		return mnistRows * mnistCols, "data.dataset", mnistClasses, "data.dataset"
	}
	return 0, "", 0, ""
}

// KnownShape is one sample's shape when the data section alone tells it (mnist,
// fashion-mnist, synthetic), nil when only the files do (idx, npy: see Peek).
func (c *Config) KnownShape() []int {
	switch c.Dataset {
	case KindSynthetic:
		return []int{c.Features}
	case KindMNIST, KindFashionMNIST:
		return imageShape(mnistRows, mnistCols, c.Layout)
	}
	return nil
}

// imageShape is the sample shape of a rows×cols image in a layout.
func imageShape(rows, cols int, layout string) []int {
	if layout == LayoutSequence {
		return []int{rows, cols}
	}
	return []int{1, rows, cols}
}

// classes bounds the labels: MNIST's and Fashion-MNIST's 10, else data.classes.
func (c *Config) classes() int {
	if c.Dataset == KindMNIST || c.Dataset == KindFashionMNIST {
		return mnistClasses
	}
	return c.Classes
}

// normalization returns the mean and std in effect for image datasets.
func (c *Config) normalization() (mean, std float64) {
	if c.Normalize != nil {
		return c.Normalize.Mean.at(0), c.Normalize.Std.at(0)
	}
	if c.Dataset == KindFashionMNIST {
		return FashionMean, FashionStd
	}
	return DefaultMean, DefaultStd
}

// SampleKey is the recipe key of the file whose header gives one sample's
// shape (idx: data.train_images, npy: data.train.x), for messages about it.
func SampleKey(c Config) string {
	switch c.Dataset {
	case KindIDX:
		return "data.train_images"
	case KindNPY:
		return "data.train.x"
	}
	return "data.dataset"
}
