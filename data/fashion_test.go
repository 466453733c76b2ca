package data

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// RequireFashionEnv, set to 1 (as CI does), turns a missing Fashion-MNIST from a
// skipped test into a failed one.
const RequireFashionEnv = "SHRINK_REQUIRE_FASHION"

// requireFashion skips the test when the Fashion-MNIST files are not installed,
// with the line that says how to get them, or fails it under SHRINK_REQUIRE_FASHION=1.
func requireFashion(t testing.TB) {
	t.Helper()
	if _, err := FindFashionMNIST(); err != nil {
		if os.Getenv(RequireFashionEnv) == "1" {
			t.Fatalf("%s=1 but Fashion-MNIST is not available: %v", RequireFashionEnv, err)
		}
		t.Skipf("Fashion-MNIST is not available (%s=1 makes this a failure): %v", RequireFashionEnv, err)
	}
}

// goldenFashionFingerprint is the fingerprint of dataset: fashion-mnist with the
// files of the Debian package (the upstream release of 2017).
const goldenFashionFingerprint = "5b89df6783b7c7332934a177de6669ef8fbba09ad555b749c9cf50207f75be95"

func TestFashionMNIST(t *testing.T) {
	requireFashion(t)
	cfg := DefaultConfig()
	cfg.Dataset = KindFashionMNIST
	ds, err := Load(cfg, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Kind != KindFashionMNIST || ds.Train.N != 60000 || ds.Test.N != 10000 || ds.Val != nil {
		t.Fatalf("kind %s train %d test %d", ds.Kind, ds.Train.N, ds.Test.N)
	}
	if ds.Features != 784 || ds.Classes != 10 || !slices.Equal(ds.Shape, []int{1, 28, 28}) || !slices.Equal(ds.Train.Shape, []int{1, 28, 28}) ||
		!slices.Equal(ds.ImageShape, []int{1, 28, 28}) || ds.Layout != LayoutImage || ds.Tokens {
		t.Fatalf("features %d classes %d shape %v", ds.Features, ds.Classes, ds.Shape)
	}
	// Ankle boots first in both files; 6000 and 1000 images of every class.
	if ds.Train.Y[0] != 9 || ds.Test.Y[0] != 9 {
		t.Fatalf("first labels %d %d; want 9 and 9", ds.Train.Y[0], ds.Test.Y[0])
	}
	for c, n := range ds.Train.ClassCounts(10) {
		if n != 6000 || ds.Test.ClassCounts(10)[c] != 1000 {
			t.Fatalf("class %d: %d training and %d test images", c, n, ds.Test.ClassCounts(10)[c])
		}
	}
	if !slices.Equal(ds.Normalize.Mean, Channels{FashionMean}) || !slices.Equal(ds.Normalize.Std, Channels{FashionStd}) {
		t.Fatalf("normalize %+v", ds.Normalize)
	}
	// (x/255 - 0.2860)/0.3530 gives the training set mean 0 and standard deviation 1:
	// the constants are its statistics. Corners are background.
	lut := NormalizeTable(FashionMean, FashionStd)
	if ds.Train.X[0] != lut[0] || ds.Test.X[783] != lut[0] {
		t.Fatalf("corner pixels %v %v; want %v", ds.Train.X[0], ds.Test.X[783], lut[0])
	}
	var sum, sq float64
	for _, v := range ds.Train.X {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	n := float64(len(ds.Train.X))
	if mean, std := sum/n, math.Sqrt(sq/n-(sum/n)*(sum/n)); math.Abs(mean) > 0.001 || math.Abs(std-1) > 0.001 {
		t.Fatalf("normalized training set: mean %v std %v; want 0 and 1", mean, std)
	}
	for i, s := range ds.Sources {
		if filepath.Base(s.Path) != MNISTFiles[i] || len(s.SHA256) != 64 {
			t.Errorf("source %+v", s)
		}
	}
	if ds.Fingerprint != goldenFashionFingerprint {
		t.Errorf("fingerprint %s; want %s", ds.Fingerprint, goldenFashionFingerprint)
	}
	if fp, err := Fingerprint(cfg, "", 1); err != nil || fp != ds.Fingerprint {
		t.Errorf("Fingerprint %s, %v; Load's %s", fp, err, ds.Fingerprint)
	}

	// The same images saved as .npy (uint8 [N, 1, 28, 28], as docs/DATA.md's
	// example does) with Fashion-MNIST's normalization are the same rows.
	npyDir := t.TempDir()
	b, err := os.ReadFile(ds.Sources[2].Path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ParseIDXImages("test images", b)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, npyDir, "x.npy", EncodeNPY(&NPY{Kind: 'u', Size: 1, Shape: []int{im.N, 1, 28, 28}, Data: im.Pixels}))
	labels := make([]byte, len(ds.Test.Y))
	for i, y := range ds.Test.Y {
		labels[i] = byte(y)
	}
	writeFile(t, npyDir, "y.npy", EncodeNPY(&NPY{Kind: 'u', Size: 1, Shape: []int{len(labels)}, Data: labels}))
	asNPY := npyConfig("x.npy", "y.npy", "x.npy", "y.npy", norm([]float64{FashionMean}, []float64{FashionStd}))
	dn := mustLoad(t, asNPY, npyDir)
	sameBits(t, "npy test X", dn.Test.X, ds.Test.X)
	if !slices.Equal(dn.Test.Y, ds.Test.Y) || !slices.Equal(dn.Shape, ds.Shape) {
		t.Fatalf("npy labels or shape differ: %v", dn.Shape)
	}
	dn = nil

	// The sequence layout: other shape, other fingerprint, same rows (checked on
	// small files in TestSequenceLayout).
	seq := cfg
	seq.Layout = LayoutSequence
	if info, err := Peek(seq, ""); err != nil || !slices.Equal(info.Shape, []int{28, 28}) || info.Train != 60000 || info.Test != 10000 {
		t.Fatalf("Peek %+v, %v", info, err)
	}
	if info, err := Peek(cfg, ""); err != nil || !slices.Equal(info.Shape, []int{1, 28, 28}) {
		t.Fatalf("Peek %+v, %v", info, err)
	}
	if fp, err := Fingerprint(seq, "", 1); err != nil || fp == ds.Fingerprint {
		t.Fatalf("sequence layout: fingerprint %s, %v", fp, err)
	}
	// The same files as MNIST would be another dataset.
	dir, _ := FindFashionMNIST()
	asMNIST := DefaultConfig()
	asMNIST.Path = dir
	if fp, err := Fingerprint(asMNIST, "", 1); err != nil || fp == ds.Fingerprint {
		t.Fatalf("fashion-mnist and mnist of the same files: %s, %v", fp, err)
	}
}

func TestFindFashionMNIST(t *testing.T) {
	empty := t.TempDir()
	full := t.TempDir()
	pinnedIDX(t, full, 28, 28)
	saved := fashionDirs
	t.Cleanup(func() { fashionDirs = saved })

	fashionDirs = []string{filepath.Join(empty, "nothing-here")}
	t.Setenv(FashionMNISTDirEnv, "")
	_, err := FindFashionMNIST()
	if err == nil {
		t.Fatal("found Fashion-MNIST where there is none")
	}
	for _, phrase := range []string{
		"cannot find the Fashion-MNIST files", "`sudo apt-get install dataset-fashion-mnist`", "/usr/share/datasets/fashion-mnist",
		"set data.path in the recipe, or SHRINK_FASHION_MNIST_DIR", filepath.Join(empty, "nothing-here"),
	} {
		if !strings.Contains(err.Error(), phrase) {
			t.Errorf("error lacks %q: %v", phrase, err)
		}
	}
	cfg := DefaultConfig()
	cfg.Dataset = KindFashionMNIST
	var fe *FieldError
	if _, err := Load(cfg, "", 1); !errors.As(err, &fe) || fe.Path != "dataset" || !strings.Contains(fe.Msg, "apt-get install") {
		t.Fatalf("Load: %v", err)
	}
	if errs := CheckFiles(cfg, ""); len(errs) != 1 || errs[0].Path != "dataset" {
		t.Fatalf("CheckFiles: %v", errs)
	}

	// The Debian folder (here: a stand-in) is found.
	fashionDirs = []string{full}
	if dir, err := FindFashionMNIST(); err != nil || dir != full {
		t.Fatalf("got %q, %v; want %q", dir, err, full)
	}
	// The variable wins, and must hold the files.
	t.Setenv(FashionMNISTDirEnv, empty)
	if _, err := FindFashionMNIST(); err == nil || !strings.Contains(err.Error(), "$SHRINK_FASHION_MNIST_DIR is "+empty+", which lacks train-images-idx3-ubyte.gz") {
		t.Fatalf("got %v", err)
	}
	t.Setenv(FashionMNISTDirEnv, full)
	if dir, err := FindFashionMNIST(); err != nil || dir != full {
		t.Fatalf("got %q, %v", dir, err)
	}

	// data.path: fashion-mnist's normalization, and a folder that lacks files.
	t.Setenv(FashionMNISTDirEnv, "")
	fashionDirs = []string{empty}
	cfg.Path = full
	ds, err := Load(cfg, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := NormalizeTable(FashionMean, FashionStd)[7]; ds.Train.X[1] != want || ds.Kind != KindFashionMNIST {
		t.Fatalf("X[1] = %v; want %v", ds.Train.X[1], want)
	}
	mnist := DefaultConfig()
	mnist.Path = full
	if a, b := must(Fingerprint(cfg, "", 1)), must(Fingerprint(mnist, "", 1)); a == b {
		t.Fatal("fashion-mnist and mnist of the same files: same fingerprint")
	}
	cfg.Path = empty
	if _, err := Load(cfg, "", 1); !errors.As(err, &fe) || fe.Path != "path" || !strings.Contains(fe.Msg, "the four Fashion-MNIST files") {
		t.Fatalf("Load: %v", err)
	}
	writeFile(t, empty, "train-images-idx3-ubyte", idxImages(2, 28, 27, nil))
	writeFile(t, empty, "train-labels-idx1-ubyte", idxLabels(1, 2))
	writeFile(t, empty, "t10k-images-idx3-ubyte", idxImages(2, 28, 27, nil))
	writeFile(t, empty, "t10k-labels-idx1-ubyte", idxLabels(1, 2))
	if _, err := Load(cfg, "", 1); !errors.As(err, &fe) || fe.Path != "path" || !strings.Contains(fe.Msg, "holds images of 28x27; Fashion-MNIST images are 28x28") {
		t.Fatalf("Load: %v", err)
	}
	if _, err := Peek(cfg, ""); !errors.As(err, &fe) || fe.Path != "path" || !strings.Contains(fe.Msg, "Fashion-MNIST images are 28x28") {
		t.Fatalf("Peek: %v", err)
	}
}

func TestSequenceLayout(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func(t *testing.T, dir string) Config
		image []int
		seq   []int
	}{
		{"idx 4x3", func(t *testing.T, dir string) Config { return tinyIDX(t, dir) }, []int{1, 4, 3}, []int{4, 3}},
		{"mnist from a path", func(t *testing.T, dir string) Config {
			pinnedIDX(t, dir, 28, 28)
			c := DefaultConfig()
			c.Path = "."
			return c
		}, []int{1, 28, 28}, []int{28, 28}},
		{"fashion-mnist from a path", func(t *testing.T, dir string) Config {
			pinnedIDX(t, dir, 28, 28)
			c := DefaultConfig()
			c.Dataset, c.Path = KindFashionMNIST, "."
			c.Normalize = &Normalize{Mean: Channels{0.5}, Std: Channels{0.5}}
			return c
		}, []int{1, 28, 28}, []int{28, 28}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			img := tt.cfg(t, dir)
			img.ValidationSplit = 0.3
			seq := img
			seq.Layout = LayoutSequence
			a, b := mustLoad(t, img, dir), mustLoad(t, seq, dir)
			// Row by row: the values of an image are its time steps, in order.
			if !slices.Equal(a.Train.X, b.Train.X) || !slices.Equal(a.Test.X, b.Test.X) || !slices.Equal(a.Val.X, b.Val.X) {
				t.Fatal("the sequence layout changed the values")
			}
			if !slices.Equal(a.Shape, tt.image) || !slices.Equal(b.Shape, tt.seq) || a.Layout != LayoutImage || b.Layout != LayoutSequence ||
				!slices.Equal(b.ImageShape, tt.image) || b.Features != a.Features {
				t.Fatalf("shapes %v and %v, layouts %s %s", a.Shape, b.Shape, a.Layout, b.Layout)
			}
			for _, s := range []*Split{b.Train, b.Val, b.Test, b.Test.Slice(1, 2)} {
				if !slices.Equal(s.Shape, tt.seq) {
					t.Fatalf("split shape %v; want %v", s.Shape, tt.seq)
				}
			}
			if a.Fingerprint == b.Fingerprint {
				t.Fatal("the layout does not change the fingerprint")
			}
			if info, err := Peek(seq, dir); err != nil || !slices.Equal(info.Shape, tt.seq) || info.Train != a.Train.N+a.Val.N || info.Test != a.Test.N {
				t.Fatalf("Peek %+v, %v", info, err)
			}
			if got := seq.KnownShape(); got != nil && !slices.Equal(got, tt.seq) {
				t.Fatalf("KnownShape %v", got)
			}
		})
	}
}

func TestKnownShapeAndPeek(t *testing.T) {
	syn := DefaultConfig()
	syn.Dataset, syn.Features, syn.Samples = KindSynthetic, 7, 100
	if got := syn.KnownShape(); !slices.Equal(got, []int{7}) {
		t.Fatal(got)
	}
	if info, err := Peek(syn, ""); err != nil || !slices.Equal(info.Shape, []int{7}) || info.Train != 80 || info.Test != 20 {
		t.Fatalf("%+v %v", info, err)
	}
	ds := mustLoad(t, syn, "")
	if !slices.Equal(ds.Shape, []int{7}) || !slices.Equal(ds.Train.Shape, []int{7}) || !slices.Equal(ds.Test.SampleShape(), []int{7}) {
		t.Fatalf("synthetic shapes %v %v", ds.Shape, ds.Train.Shape)
	}
	mnist := DefaultConfig()
	if got := mnist.KnownShape(); !slices.Equal(got, []int{1, 28, 28}) {
		t.Fatal(got)
	}
	dir := t.TempDir()
	idx := tinyIDX(t, dir)
	if idx.KnownShape() != nil {
		t.Fatal("idx shape known without its files")
	}
	if info, err := Peek(idx, dir); err != nil || !slices.Equal(info.Shape, []int{1, 4, 3}) || info.Train != 10 || info.Test != 5 {
		t.Fatalf("%+v %v", info, err)
	}
	writeFile(t, dir, "test-images", idxImages(5, 3, 4, nil))
	if _, err := Peek(idx, dir); err == nil || !strings.Contains(err.Error(), "holds images of 3x4 but the training images") {
		t.Fatalf("Peek: %v", err)
	}
	writeFile(t, dir, "test-images", idxLabels(1, 2))
	if _, err := Peek(idx, dir); err == nil || !strings.Contains(err.Error(), "bad magic 0x00000801") {
		t.Fatalf("Peek: %v", err)
	}
	// A Split built without a shape is a vector.
	s := &Split{X: make([]float32, 6), Y: make([]int32, 2), N: 2, Features: 3}
	if !slices.Equal(s.SampleShape(), []int{3}) || s.Slice(0, 1).Shape != nil {
		t.Fatal(s.SampleShape())
	}
}
