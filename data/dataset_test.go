package data

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Values cross-checked against float32 arithmetic done independently (each operation
// rounded to float32, as torch does on CPU): ToTensor's x = float32(p)/255, then
// Normalize's (x - mean)/std.
func TestNormalizeTable(t *testing.T) {
	tests := []struct {
		mean, std float64
		pixel     int
		want      float32
		bits      uint32
	}{
		{0.1307, 0.3081, 0, -0.42421296, 0xbed93271},
		{0.1307, 0.3081, 1, -0.41148472, 0xbed2ae20},
		{0.1307, 0.3081, 2, -0.3987565, 0xbecc29d0},
		{0.1307, 0.3081, 37, 0.046731707, 0x3d3f69bf},
		{0.1307, 0.3081, 128, 1.2050011, 0x3f9a3d7a},
		{0.1307, 0.3081, 200, 2.121434, 0x4007c593},
		{0.1307, 0.3081, 254, 2.8087585, 0x4033c2b3},
		{0.1307, 0.3081, 255, 2.8214867, 0x4034933d},
		{0.5, 0.5, 0, -1, 0xbf800000},
		{0.5, 0.5, 128, 0.003921628, 0x3b808100},
		{0.5, 0.5, 255, 1, 0x3f800000},
		{0, 1, 51, 0.2, math.Float32bits(0.2)},
	}
	for _, tt := range tests {
		got := NormalizeTable(tt.mean, tt.std)[tt.pixel]
		if got != tt.want || math.Float32bits(got) != tt.bits {
			t.Errorf("mean %v std %v pixel %d: got %v (%#08x); want %v (%#08x)", tt.mean, tt.std, tt.pixel, got, math.Float32bits(got), tt.want, tt.bits)
		}
	}
}

func TestLoadIDX(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyIDX(t, dir)
	ds, err := Load(cfg, dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Kind != KindIDX || ds.Features != 12 || ds.Classes != 10 || !slices.Equal(ds.ImageShape, []int{1, 4, 3}) {
		t.Fatalf("kind %s features %d classes %d shape %v", ds.Kind, ds.Features, ds.Classes, ds.ImageShape)
	}
	if ds.Val != nil || ds.Train.N != 10 || ds.Test.N != 5 || len(ds.Train.X) != 120 || len(ds.Test.X) != 60 {
		t.Fatalf("train %d rows, test %d rows, val %v", ds.Train.N, ds.Test.N, ds.Val)
	}
	lut := NormalizeTable(DefaultMean, DefaultStd)
	for i, v := range ds.Train.X {
		if want := lut[byte(i*7)]; v != want {
			t.Fatalf("train X[%d] = %v; want %v", i, v, want)
		}
	}
	if ds.Train.X[1] != float32(float32(float32(7.0/255)-0.1307)/0.3081) {
		t.Fatal("normalization is not float32 arithmetic")
	}
	if !slices.Equal(ds.Train.Y, []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) || !slices.Equal(ds.Test.Y, []int32{9, 8, 7, 6, 5}) {
		t.Fatalf("labels %v %v", ds.Train.Y, ds.Test.Y)
	}
	if len(ds.Sources) != 4 || ds.Sources[0].Key != "train_images" || ds.Sources[0].Path != filepath.Join(dir, "train-images.gz") || len(ds.Sources[3].SHA256) != 64 {
		t.Fatalf("sources %+v", ds.Sources)
	}
	if ds.Normalize == nil || !slices.Equal(ds.Normalize.Mean, Channels{DefaultMean}) || !slices.Equal(ds.Normalize.Std, Channels{DefaultStd}) {
		t.Fatalf("normalize %+v", ds.Normalize)
	}

	// Custom normalization, absolute paths, no baseDir.
	cfg.Normalize = &Normalize{Mean: Channels{0.5}, Std: Channels{0.25}}
	for _, p := range []*string{&cfg.TrainImages, &cfg.TrainLabels, &cfg.TestImages, &cfg.TestLabels} {
		*p = filepath.Join(dir, *p)
	}
	ds, err = Load(cfg, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ds.Test.X[2], float32(float32(float32(14.0/255)-0.5)/0.25); got != want {
		t.Fatalf("custom normalization: got %v; want %v", got, want)
	}
}

func TestLoadIDXErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string][]byte // overrides of tinyIDX's files
		edit  func(*Config)
		field string
		msg   string
	}{
		{"count mismatch", map[string][]byte{"test-labels": idxLabels(1, 2, 3)}, nil,
			"test_labels", "test-labels holds 3 labels but"},
		{"label out of range", map[string][]byte{"train-labels.gz": gz(idxLabels(0, 1, 2, 3, 4, 5, 6, 7, 12, 9))}, nil,
			"train_labels", "label 12 at index 8 is out of range for 10 classes"},
		{"label out of range for classes", nil, func(c *Config) { c.Classes = 5 },
			"train_labels", "label 5 at index 5 is out of range for 5 classes"},
		{"image size mismatch", map[string][]byte{"test-images": idxImages(5, 3, 4, nil)}, nil,
			"test_images", "holds images of 3x4 but the training images"},
		{"no images", map[string][]byte{"train-images.gz": idxImages(0, 4, 3, nil), "train-labels.gz": idxLabels()}, nil,
			"train_images", "holds no images"},
		{"truncated", map[string][]byte{"train-images.gz": gz(idxImages(10, 4, 3, nil)[:100])}, nil,
			"train_images", "train-images.gz: truncated: header says 10 images of 4x3, file holds 7"},
		{"labels given as images", map[string][]byte{"test-images": idxLabels(1, 2)}, nil,
			"test_images", "bad magic 0x00000801"},
		{"missing file", nil, func(c *Config) { c.TestLabels = "nope" },
			"test_labels", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := tinyIDX(t, dir)
			for name, b := range tt.files {
				writeFile(t, dir, name, b)
			}
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			_, err := Load(cfg, dir, 1)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Path != tt.field || !strings.Contains(fe.Msg, tt.msg) {
				t.Fatalf("got %v; want a FieldError on %s containing %q", err, tt.field, tt.msg)
			}
		})
	}
	// The cause stays reachable.
	dir := t.TempDir()
	cfg := tinyIDX(t, dir)
	cfg.TrainImages = "missing.gz"
	if _, err := Load(cfg, dir, 1); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v; want fs.ErrNotExist", err)
	}
}

func TestValidationSplit(t *testing.T) {
	tests := []struct {
		samples   int
		frac      float64
		train     int // before the split: samples*4/5
		wantVal   int
		wantTrain int
	}{
		{100, 0.1, 80, 8, 72},
		{1000, 0.2, 800, 160, 640},
		{10, 0.01, 8, 1, 7}, // rounds to 0: at least 1
		{10, 0.99, 8, 7, 1}, // rounds to 8: leaves at least 1
		{13, 0.5, 10, 5, 5},
		{1000, 0.0625, 800, 50, 750},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		cfg.Dataset, cfg.Features, cfg.Classes, cfg.Samples = KindSynthetic, 3, 2, tt.samples
		full, err := Load(cfg, "", 7)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ValidationSplit = tt.frac
		ds, err := Load(cfg, "", 7)
		if err != nil {
			t.Fatal(err)
		}
		if full.Train.N != tt.train || ds.Val.N != tt.wantVal || ds.Train.N != tt.wantTrain {
			t.Fatalf("samples %d split %v: train %d -> val %d + train %d; want %d -> %d + %d",
				tt.samples, tt.frac, full.Train.N, ds.Val.N, ds.Train.N, tt.train, tt.wantVal, tt.wantTrain)
		}
		checkPartition(t, full.Train, ds.Train, ds.Val)
		if !slices.Equal(ds.Test.X, full.Test.X) {
			t.Fatal("the validation split changed the test set")
		}
	}

	// Seeded: the same seed picks the same rows, another seed other rows.
	dir := t.TempDir()
	cfg := tinyIDX(t, dir)
	cfg.ValidationSplit = 0.3
	a, _ := Load(cfg, dir, 1)
	b, _ := Load(cfg, dir, 1)
	c, _ := Load(cfg, dir, 2)
	if !slices.Equal(a.Val.Y, b.Val.Y) || !slices.Equal(a.Val.X, b.Val.X) {
		t.Fatal("same seed, different validation rows")
	}
	if slices.Equal(a.Val.Y, c.Val.Y) {
		t.Fatalf("seeds 1 and 2 pick the same validation rows %v", a.Val.Y)
	}
	if a.Val.N != 3 || a.Train.N != 7 || a.Test.N != 5 {
		t.Fatalf("val %d train %d test %d", a.Val.N, a.Train.N, a.Test.N)
	}
	checkPartition(t, mustLoad(t, tinyIDXNoSplit(cfg), dir).Train, a.Train, a.Val)
}

func tinyIDXNoSplit(c Config) Config { c.ValidationSplit = 0; return c }

func mustLoad(t *testing.T, cfg Config, dir string) *Dataset {
	t.Helper()
	ds, err := Load(cfg, dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// checkPartition checks that train and val together hold every row of full exactly
// once, each in the original order.
func checkPartition(t *testing.T, full, train, val *Split) {
	t.Helper()
	if train.N+val.N != full.N || len(train.X) != train.N*full.Features || len(val.X) != val.N*full.Features {
		t.Fatalf("%d + %d rows from %d", train.N, val.N, full.N)
	}
	ti, vi := 0, 0
	for i := 0; i < full.N; i++ {
		row := full.Row(i)
		switch {
		case ti < train.N && slices.Equal(train.Row(ti), row) && train.Y[ti] == full.Y[i]:
			ti++
		case vi < val.N && slices.Equal(val.Row(vi), row) && val.Y[vi] == full.Y[i]:
			vi++
		default:
			t.Fatalf("row %d is in neither part (in order)", i)
		}
	}
}

func TestFingerprint(t *testing.T) {
	dir := t.TempDir()
	base := tinyIDX(t, dir)
	fp := func(cfg Config, dir string, seed uint64) string {
		t.Helper()
		ds, err := Load(cfg, dir, seed)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds.Fingerprint) != 64 {
			t.Fatalf("fingerprint %q", ds.Fingerprint)
		}
		// The cheap fingerprint (no decoding) must agree with Load's.
		quick, err := Fingerprint(cfg, dir, seed)
		if err != nil || quick != ds.Fingerprint {
			t.Fatalf("Fingerprint = %q, %v; Load's is %q", quick, err, ds.Fingerprint)
		}
		return ds.Fingerprint
	}
	ref := fp(base, dir, 1)

	same := map[string]func() string{
		"reload":               func() string { return fp(base, dir, 1) },
		"other seed, no split": func() string { return fp(base, dir, 99) },
		"files moved": func() string {
			other := t.TempDir()
			tinyIDX(t, other)
			return fp(base, other, 1)
		},
		"batch size": func() string { c := base; c.BatchSize = 7; c.Shuffle = false; return fp(c, dir, 1) },
		"normalize spelled out": func() string {
			c := base
			c.Normalize = &Normalize{Mean: Channels{DefaultMean}, Std: Channels{DefaultStd}}
			return fp(c, dir, 1)
		},
	}
	for name, f := range same {
		if got := f(); got != ref {
			t.Errorf("%s changed the fingerprint", name)
		}
	}

	changed := map[string]func() string{
		"one pixel byte": func() string {
			other := t.TempDir()
			tinyIDX(t, other)
			pix := idxImages(5, 4, 3, nil)
			pix[20]++
			writeFile(t, other, "test-images", pix)
			return fp(base, other, 1)
		},
		"one label": func() string {
			other := t.TempDir()
			tinyIDX(t, other)
			writeFile(t, other, "test-labels", idxLabels(9, 8, 7, 6, 4))
			return fp(base, other, 1)
		},
		"validation split": func() string { c := base; c.ValidationSplit = 0.2; return fp(c, dir, 1) },
		"normalize mean": func() string {
			c := base
			c.Normalize = &Normalize{Mean: Channels{0.13}, Std: Channels{DefaultStd}}
			return fp(c, dir, 1)
		},
		"normalize std": func() string {
			c := base
			c.Normalize = &Normalize{Mean: Channels{DefaultMean}, Std: Channels{0.31}}
			return fp(c, dir, 1)
		},
		"classes": func() string { c := base; c.Classes = 11; return fp(c, dir, 1) },
	}
	seen := map[string]string{ref: "reference"}
	for name, f := range changed {
		got := f()
		if prev, dup := seen[got]; dup {
			t.Errorf("%s gives the same fingerprint as %s", name, prev)
		}
		seen[got] = name
	}

	// With a validation split, the seed picks the rows, so it counts.
	c := base
	c.ValidationSplit = 0.2
	if fp(c, dir, 1) == fp(c, dir, 2) {
		t.Error("validation split with another seed: same fingerprint")
	}
	// Same data as idx and mnist: the kind counts.
	mnistDir := t.TempDir()
	idxCfg := DefaultConfig()
	idxCfg.Dataset = KindIDX
	for i, p := range []*string{&idxCfg.TrainImages, &idxCfg.TrainLabels, &idxCfg.TestImages, &idxCfg.TestLabels} {
		lbl := idxLabels(1, 2)
		b := gz(idxImages(2, 28, 28, nil))
		if i%2 == 1 {
			b = gz(lbl)
		}
		*p = writeFile(t, mnistDir, MNISTFiles[i], b)
	}
	mnistCfg := DefaultConfig()
	mnistCfg.Path = mnistDir
	if fp(idxCfg, "", 1) == fp(mnistCfg, "", 1) {
		t.Error("idx and mnist of the same files: same fingerprint")
	}

	// Synthetic: parameters and seed.
	syn := DefaultConfig()
	syn.Dataset = KindSynthetic
	synRef := fp(syn, "", 1)
	if fp(syn, "", 1) != synRef {
		t.Error("synthetic: same seed, other fingerprint")
	}
	for name, edit := range map[string]func(*Config){
		"features": func(c *Config) { c.Features = 33 },
		"classes":  func(c *Config) { c.Classes = 9 },
		"samples":  func(c *Config) { c.Samples = 999 },
	} {
		c := syn
		edit(&c)
		if fp(c, "", 1) == synRef {
			t.Errorf("synthetic %s: same fingerprint", name)
		}
	}
	if fp(syn, "", 2) == synRef {
		t.Error("synthetic seed: same fingerprint")
	}
}

func TestMNISTPathErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Path = "empty"
	os.Mkdir(filepath.Join(dir, "empty"), 0o755)
	_, err := Load(cfg, dir, 1)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "path" || !strings.Contains(fe.Msg, "lacks [train-images-idx3-ubyte.gz") {
		t.Fatalf("got %v", err)
	}

	// Uncompressed files are accepted too, but must be 28x28.
	for i, name := range MNISTFiles {
		b := idxImages(3, 28, 27, nil)
		if i%2 == 1 {
			b = idxLabels(1, 2, 3)
		}
		writeFile(t, dir, strings.TrimSuffix(name, ".gz"), b)
	}
	cfg.Path = "."
	_, err = Load(cfg, dir, 1)
	if !errors.As(err, &fe) || fe.Path != "path" || !strings.Contains(fe.Msg, "holds images of 28x27; MNIST images are 28x28") {
		t.Fatalf("got %v", err)
	}
}

func TestSplitHelpers(t *testing.T) {
	s := &Split{X: []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, Y: []int32{0, 1, 0, 1, 1}, N: 5, Features: 2}
	if !slices.Equal(s.Row(2), []float32{4, 5}) {
		t.Fatal(s.Row(2))
	}
	sub := s.Slice(1, 3)
	if sub.N != 2 || !slices.Equal(sub.X, []float32{2, 3, 4, 5}) || !slices.Equal(sub.Y, []int32{1, 0}) {
		t.Fatalf("%+v", sub)
	}
	x, y := s.Batch(2, 2)
	if !slices.Equal(x, []float32{8, 9}) || !slices.Equal(y, []int32{1}) || s.NumBatches(2) != 3 {
		t.Fatal(x, y)
	}
	if got := s.ClassCounts(2); !slices.Equal(got, []int{2, 3}) {
		t.Fatal(got)
	}
}
