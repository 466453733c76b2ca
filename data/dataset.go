package data

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/shrink-ml/shrink/config"
)

// Streams of the recipe seed: each use of randomness draws from its own PCG stream
// rand.NewPCG(seed, stream), so adding one never shifts another.
const (
	streamSplit uint64 = 0x7368726b_73706c74 // "shrksplt": the validation split
	streamData  uint64 = 0x7368726b_64617461 // "shrkdata": synthetic data
)

// fingerprintVersion changes whenever this package changes how it turns sources into
// rows, so that fingerprints never match across such a change.
const fingerprintVersion = "shrink/data v1"

// Split is one part of a dataset held in memory: X holds N rows of Features float32
// values, already normalized, row-major; Y holds the N labels. Shape is one row's
// (one sample's) shape in C order, whose product is Features: [1, 28, 28] for an
// MNIST image, [28, 28] in the sequence layout, [T] for T token ids, [features]
// for synthetic data. The model decides how it reads the row ([784] and
// [1, 28, 28] are the same values); nil means [Features].
type Split struct {
	X           []float32
	Y           []int32
	N, Features int
	Shape       []int
}

// SampleShape returns Shape, or [Features] when Shape is nil.
func (s *Split) SampleShape() []int {
	if len(s.Shape) == 0 {
		return []int{s.Features}
	}
	return s.Shape
}

// Row returns row i of X (shares memory).
func (s *Split) Row(i int) []float32 { return s.X[i*s.Features : (i+1)*s.Features] }

// Slice returns rows [i, j) as a Split sharing memory with s.
func (s *Split) Slice(i, j int) *Split {
	if i < 0 || j > s.N || i > j {
		panic(fmt.Sprintf("data: Split.Slice(%d, %d) out of range for %d rows", i, j, s.N))
	}
	return &Split{X: s.X[i*s.Features : j*s.Features], Y: s.Y[i:j], N: j - i, Features: s.Features, Shape: s.Shape}
}

// Batch returns batch i of size bs in file order, as views of X and Y (no copy, no
// allocation): rows [i*bs, min((i+1)*bs, N)). For evaluation passes.
func (s *Split) Batch(i, bs int) (x []float32, y []int32) {
	lo, hi := i*bs, min((i+1)*bs, s.N)
	return s.X[lo*s.Features : hi*s.Features], s.Y[lo:hi]
}

// NumBatches returns the number of batches of size bs covering all rows (the last
// one may be short).
func (s *Split) NumBatches(bs int) int { return ceilDiv(s.N, bs) }

// ceilDiv is n/bs rounded up, without the overflow of (n + bs - 1) / bs for a
// batch size near the largest int (a recipe's batch_size has no upper bound).
func ceilDiv(n, bs int) int {
	if n == 0 {
		return 0
	}
	return (n-1)/bs + 1
}

// ClassCounts returns how many rows carry each label in [0, classes).
func (s *Split) ClassCounts(classes int) []int {
	c := make([]int, classes)
	for _, y := range s.Y {
		if int(y) < classes {
			c[y]++
		}
	}
	return c
}

// Source is one file a dataset was read from.
type Source struct {
	Key    string // recipe key of the file: train_images, train_labels, test_images, test_labels (also for mnist and fashion-mnist), or train.x, train.y, test.x, test.y (npy)
	Path   string // as opened
	SHA256 string // hex digest of the file's bytes
}

// Dataset is a loaded dataset.
type Dataset struct {
	Kind string // mnist, fashion-mnist, idx, npy or synthetic
	// Train and Test are always set. Val is nil unless validation_split > 0; it is a
	// random subset of the training rows drawn from the seed, removed from Train.
	Train, Val, Test *Split
	// Features is the number of values per row. Classes is 10 for mnist and
	// fashion-mnist, data.classes for idx and synthetic, and one more than the
	// largest label for npy (whose labels the model's classes bound).
	Features, Classes int
	Shape             []int      // one sample's shape, as in Split.Shape
	ImageShape        []int      // [1, rows, cols] (CHW) for mnist, fashion-mnist and idx whatever the layout, nil otherwise
	Layout            string     // image or sequence for mnist, fashion-mnist and idx, "" otherwise
	Normalize         *Normalize // normalization applied (mnist, fashion-mnist, idx; npy when data.normalize is set), else nil
	// Tokens is true when X holds integer token ids (npy x of int32 or int64) as
	// exact float32 values, for a model that starts with an embedding; Vocab is then
	// one more than the largest id. Ids are below 2^24, where float32 is exact.
	Tokens  bool
	Vocab   int
	Sources []Source // the files read (all datasets but synthetic)
	// Fingerprint is a sha256 hex digest over the dataset kind, the sha256 of every
	// source file (or the synthetic parameters, seed and generated values), the
	// validation split and the normalization: it changes whenever the rows a stage
	// sees change, and only then (moving the files does not change it).
	Fingerprint string
}

// Load reads the dataset described by cfg. baseDir resolves relative paths (the
// recipe file's folder); seed drives synthetic data and the validation split (it
// does not enter the fingerprint of mnist or idx data without a validation split).
func Load(cfg Config, baseDir string, seed uint64) (*Dataset, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var ds *Dataset
	var err error
	switch cfg.Dataset {
	case KindSynthetic:
		ds = synthetic(cfg.Features, cfg.Classes, cfg.Samples, seed)
	case KindNPY:
		ds, err = loadNPY(&cfg, baseDir)
	default:
		ds, err = loadImages(&cfg, baseDir)
	}
	if err != nil {
		return nil, err
	}
	ds.Kind = cfg.Dataset
	if cfg.ValidationSplit > 0 {
		if err := splitValidation(ds, cfg.ValidationSplit, seed); err != nil {
			return nil, err
		}
	}
	ds.Fingerprint = fingerprint(&cfg, ds.Sources, seed)
	return ds, nil
}

// Fingerprint is the fingerprint Load would give, computed from the description
// and the files' digests without decoding them: what a cache key needs, fast.
func Fingerprint(cfg Config, baseDir string, seed uint64) (string, error) {
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	var sources []Source
	if cfg.Dataset != KindSynthetic {
		files, err := sourceFiles(&cfg, baseDir)
		if err != nil {
			return "", err
		}
		for _, f := range files {
			sum, err := fileSHA256(f.path)
			if err != nil {
				return "", &FieldError{Path: f.key, Msg: err.Error(), Err: err}
			}
			sources = append(sources, Source{Key: f.key, Path: f.path, SHA256: sum})
		}
	}
	return fingerprint(&cfg, sources, seed), nil
}

// fingerprint hashes what decides the rows a stage sees: the kind, the files'
// digests (or the synthetic parameters and seed), the classes, the normalization,
// the layout and the validation split. Lines are added only for values that did
// not exist before (a sequence layout, npy), so that the fingerprints of earlier
// configurations stay byte for byte what they were (TestFingerprintsPinned).
func fingerprint(cfg *Config, sources []Source, seed uint64) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nkind=%s\n", fingerprintVersion, cfg.Dataset)
	switch cfg.Dataset {
	case KindSynthetic:
		fmt.Fprintf(h, "features=%d classes=%d samples=%d seed=%d separation=%v\n", cfg.Features, cfg.Classes, cfg.Samples, seed, SyntheticSeparation)
	case KindNPY:
		for _, s := range sources {
			fmt.Fprintf(h, "%s=%s\n", s.Key, s.SHA256)
		}
		// The model's classes bound the labels, and the stage key holds the model.
		if n := cfg.Normalize; n == nil {
			fmt.Fprintf(h, "normalize=none\n")
		} else {
			fmt.Fprintf(h, "normalize mean=%s std=%s\n", float32Bits(n.Mean), float32Bits(n.Std))
		}
	default:
		for _, s := range sources {
			fmt.Fprintf(h, "%s=%s\n", s.Key, s.SHA256)
		}
		mean, std := cfg.normalization()
		fmt.Fprintf(h, "classes=%d normalize=%08x/%08x\n", cfg.classes(), math.Float32bits(float32(mean)), math.Float32bits(float32(std)))
		if cfg.Layout == LayoutSequence {
			fmt.Fprintf(h, "layout=%s\n", cfg.Layout)
		}
	}
	if cfg.ValidationSplit > 0 {
		fmt.Fprintf(h, "validation=%v seed=%d\n", cfg.ValidationSplit, seed)
	} else {
		fmt.Fprintf(h, "validation=0\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// float32Bits lists the float32 bits of values, as the normalization uses them.
func float32Bits(values Channels) string {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = fmt.Sprintf("%08x", math.Float32bits(float32(v)))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// readRegular reads a regular file whole: not a device such as /dev/zero,
// which would be read forever, nor a FIFO, whose open blocks.
func readRegular(path string) ([]byte, error) {
	if err := isRegular(path); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

func isRegular(path string) error {
	st, err := os.Stat(path)
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	return err
}

// fileSHA256 streams a file through sha256.
func fileSHA256(path string) (string, error) {
	if err := isRegular(path); err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// splitValidation moves round(frac*N) training rows (at least 1, leaving at least 1)
// chosen by a seeded permutation into ds.Val. Both parts keep the original row order.
func splitValidation(ds *Dataset, frac float64, seed uint64) error {
	tr := ds.Train
	if tr.N < 2 {
		return fieldErr("validation_split", "the training set has %d row(s), too few to hold out a validation set", tr.N)
	}
	nVal := min(max(int(math.Round(frac*float64(tr.N))), 1), tr.N-1)
	rng := rand.New(rand.NewPCG(seed, streamSplit))
	perm := make([]int32, tr.N)
	for i := range perm {
		perm[i] = int32(i)
	}
	rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	valIdx := perm[:nVal]
	slices.Sort(valIdx)
	isVal := make([]bool, tr.N)
	for _, i := range valIdx {
		isVal[i] = true
	}
	f := tr.Features
	val := &Split{X: make([]float32, nVal*f), Y: make([]int32, nVal), N: nVal, Features: f, Shape: tr.Shape}
	for k, i := range valIdx {
		copy(val.X[k*f:(k+1)*f], tr.X[int(i)*f:(int(i)+1)*f])
		val.Y[k] = tr.Y[i]
	}
	// Compact the training rows in place (rows only move towards the front).
	w := 0
	for i := 0; i < tr.N; i++ {
		if isVal[i] {
			continue
		}
		if w != i {
			copy(tr.X[w*f:(w+1)*f], tr.X[i*f:(i+1)*f])
			tr.Y[w] = tr.Y[i]
		}
		w++
	}
	ds.Train = &Split{X: tr.X[: w*f : w*f], Y: tr.Y[:w:w], N: w, Features: f, Shape: tr.Shape}
	ds.Val = val
	return nil
}

// NormalizeTable returns the float32 value of every pixel byte, computed exactly as
// torchvision's ToTensor and Normalize do on CPU: x = float32(p)/255, then
// (x - float32(mean)) / float32(std), each operation rounded to float32.
func NormalizeTable(mean, std float64) *[256]float32 {
	var t [256]float32
	m, s := float32(mean), float32(std)
	for p := range t {
		x := float32(float32(p) / 255)
		t[p] = float32(float32(x-m) / s)
	}
	return &t
}

// checkTable refuses a normalization that takes a pixel beyond float32 (a
// std so small that (x - mean) / std overflows): the model would see
// infinities, and training would fail on a NaN loss far from the cause.
func checkTable(t *[256]float32, mean, std float64) error {
	for p, v := range t {
		if math.IsInf(float64(v), 0) || math.IsNaN(float64(v)) {
			return fmt.Errorf("pixel %d/255 becomes %v after (x - %v) / %v, beyond float32: use a larger normalize.std", p, v, mean, std)
		}
	}
	return nil
}

// displayName is how people write a dataset's name.
func displayName(kind string) string {
	switch kind {
	case KindMNIST:
		return "MNIST"
	case KindFashionMNIST:
		return "Fashion-MNIST"
	}
	return kind
}

// sourceFile is a file a dataset reads: its recipe key and resolved path.
type sourceFile struct {
	key, path string
}

// loadImages reads mnist, fashion-mnist or idx files.
func loadImages(cfg *Config, baseDir string) (*Dataset, error) {
	files, err := sourceFiles(cfg, baseDir)
	if err != nil {
		return nil, err
	}
	classes := cfg.classes()
	hint := " (raise data.classes if the labels are right)"
	switch cfg.Dataset {
	case KindMNIST:
		hint = " (MNIST has 10)"
	case KindFashionMNIST:
		hint = " (Fashion-MNIST has 10)"
	}
	mean, std := cfg.normalization()
	lut := NormalizeTable(mean, std)
	if err := checkTable(lut, mean, std); err != nil {
		return nil, &FieldError{Path: "normalize", Msg: err.Error(), Err: err}
	}

	type result struct {
		split      *Split
		rows, cols int
		sums       [2]string
		err        error
	}
	var res [2]result
	var wg sync.WaitGroup
	for k := range 2 {
		wg.Go(func() {
			r := &res[k]
			r.split, r.rows, r.cols, r.sums, r.err = loadPair(files[2*k], files[2*k+1], classes, hint, lut)
		})
	}
	wg.Wait()
	for _, r := range res {
		if r.err != nil {
			return nil, r.err
		}
	}
	tr, te := res[0], res[1]
	if te.rows != tr.rows || te.cols != tr.cols {
		return nil, fieldErr("test_images", "%s holds images of %dx%d but the training images (%s) are %dx%d",
			files[2].path, te.rows, te.cols, files[0].path, tr.rows, tr.cols)
	}
	if cfg.Dataset != KindIDX && (tr.rows != mnistRows || tr.cols != mnistCols) {
		return nil, fieldErr("path", "%s holds images of %dx%d; %s images are %dx%d", files[0].path, tr.rows, tr.cols, displayName(cfg.Dataset), mnistRows, mnistCols)
	}
	shape := imageShape(tr.rows, tr.cols, cfg.Layout)
	tr.split.Shape, te.split.Shape = shape, shape
	ds := &Dataset{
		Train: tr.split, Test: te.split,
		Features: tr.rows * tr.cols, Classes: classes,
		Shape:      shape,
		ImageShape: []int{1, tr.rows, tr.cols},
		Layout:     cmp.Or(cfg.Layout, LayoutImage),
		Normalize:  &Normalize{Mean: Channels{mean}, Std: Channels{std}},
	}
	for k, f := range files {
		ds.Sources = append(ds.Sources, Source{Key: f.key, Path: f.path, SHA256: res[k/2].sums[k%2]})
	}
	return ds, nil
}

// CheckFiles reports each file the data section names that is not there, at
// its key (path, train_images, train.x, ...), without reading any: what validation
// can check before a run. MNIST without data.path is found in the module cache
// when it is loaded; Fashion-MNIST without data.path must be installed (the
// error, at the dataset key, says how).
func CheckFiles(cfg Config, baseDir string) config.Errors {
	if cfg.Dataset == KindSynthetic {
		return nil
	}
	if cfg.Dataset == KindMNIST && cfg.Path == "" {
		// Found in the module cache when loaded; but a $SHRINK_MNIST_DIR that
		// lacks the files fails every run, so say it now.
		if dir := os.Getenv(MNISTDirEnv); dir != "" {
			if missing := missingMNISTFiles(dir); len(missing) > 0 {
				return config.Errors{fieldErr("path", "$%s is %s, which lacks %s; point it at a folder holding the four MNIST files, or unset it to use the GoMNIST module's copy",
					MNISTDirEnv, dir, strings.Join(missing, ", "))}
			}
		}
		return nil
	}
	files, err := sourceFiles(&cfg, baseDir)
	if err != nil {
		return config.AsErrors(err)
	}
	var errs config.Errors
	for _, f := range files {
		if st, err := os.Stat(f.path); err != nil {
			errs = append(errs, fieldErr(f.key, "%s: no such file (a relative path is relative to the recipe's folder)", f.path))
		} else if !st.Mode().IsRegular() {
			errs = append(errs, fieldErr(f.key, "%s is not a regular file: name an IDX file", f.path))
		}
	}
	return errs
}

// sourceFiles lists the four files of an mnist, fashion-mnist, idx or npy
// dataset, resolved: train inputs, train labels, test inputs, test labels.
func sourceFiles(cfg *Config, baseDir string) ([]sourceFile, error) {
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) || baseDir == "" {
			return p
		}
		return filepath.Join(baseDir, p)
	}
	switch cfg.Dataset {
	case KindMNIST, KindFashionMNIST:
		find, key := FindMNIST, "path"
		if cfg.Dataset == KindFashionMNIST {
			find, key = FindFashionMNIST, "dataset"
		}
		dir := resolve(cfg.Path)
		if cfg.Path == "" {
			var err error
			if dir, err = find(); err != nil {
				return nil, &FieldError{Path: key, Msg: err.Error(), Err: err}
			}
		} else if missing := missingMNISTFiles(dir); len(missing) > 0 {
			return nil, fieldErr("path", "%s lacks %v (or their uncompressed versions): data.path must be a folder holding the four %s files", dir, missing, displayName(cfg.Dataset))
		}
		files := make([]sourceFile, 4)
		for i, key := range []string{"train_images", "train_labels", "test_images", "test_labels"} {
			files[i] = sourceFile{key, mnistFile(dir, MNISTFiles[i])}
		}
		return files, nil
	case KindNPY:
		var files []sourceFile
		for _, s := range []struct {
			key string
			a   *Arrays
		}{{"train", cfg.Train}, {"test", cfg.Test}} {
			if s.a == nil { // Validate reports it
				return nil, fieldErr(s.key, "missing")
			}
			files = append(files, sourceFile{s.key + ".x", resolve(s.a.X)}, sourceFile{s.key + ".y", resolve(s.a.Y)})
		}
		return files, nil
	}
	return []sourceFile{
		{"train_images", resolve(cfg.TrainImages)}, {"train_labels", resolve(cfg.TrainLabels)},
		{"test_images", resolve(cfg.TestImages)}, {"test_labels", resolve(cfg.TestLabels)},
	}, nil
}

// loadPair reads an image file and its label file into a normalized Split.
// hint ends the message of an out-of-range label.
func loadPair(imf, lbf sourceFile, classes int, hint string, lut *[256]float32) (s *Split, rows, cols int, sums [2]string, err error) {
	fail := func(f sourceFile, e error) (*Split, int, int, [2]string, error) {
		return nil, 0, 0, sums, &FieldError{Path: f.key, Msg: e.Error(), Err: e}
	}
	ib, err := readRegular(imf.path)
	if err != nil {
		return fail(imf, err)
	}
	sums[0] = sha256hex(ib)
	im, err := ParseIDXImages(imf.path, ib)
	if err != nil {
		return fail(imf, err)
	}
	lb, err := readRegular(lbf.path)
	if err != nil {
		return fail(lbf, err)
	}
	sums[1] = sha256hex(lb)
	labels, err := ParseIDXLabels(lbf.path, lb)
	if err != nil {
		return fail(lbf, err)
	}
	if im.N == 0 {
		return fail(imf, fmt.Errorf("%s: holds no images", imf.path))
	}
	if len(labels) != im.N {
		return fail(lbf, fmt.Errorf("%s holds %d labels but %s holds %d images", lbf.path, len(labels), imf.path, im.N))
	}
	y := make([]int32, len(labels))
	for i, l := range labels {
		if int(l) >= classes {
			return fail(lbf, fmt.Errorf("%s: label %d at index %d is out of range for %d classes%s", lbf.path, l, i, classes, hint))
		}
		y[i] = int32(l)
	}
	f := im.Rows * im.Cols
	return &Split{X: normalizePixels(im.Pixels, lut), Y: y, N: im.N, Features: f}, im.Rows, im.Cols, sums, nil
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// normalizePixels maps every byte through lut, in parallel for large inputs.
func normalizePixels(pix []byte, lut *[256]float32) []float32 {
	x := make([]float32, len(pix))
	const chunk = 1 << 20
	workers := min(runtime.GOMAXPROCS(0), (len(pix)+chunk-1)/chunk)
	if workers <= 1 {
		mapLUT(x, pix, lut)
		return x
	}
	var wg sync.WaitGroup
	per := (len(pix) + workers - 1) / workers
	for lo := 0; lo < len(pix); lo += per {
		hi := min(lo+per, len(pix))
		wg.Go(func() { mapLUT(x[lo:hi], pix[lo:hi], lut) })
	}
	wg.Wait()
	return x
}

func mapLUT(dst []float32, src []byte, lut *[256]float32) {
	dst = dst[:len(src)]
	for i, p := range src {
		dst[i] = lut[p]
	}
}
