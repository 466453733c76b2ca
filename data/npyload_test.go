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

// npyConfig names the fixtures trainX, trainY, testX, testY (in testdata/npy).
func npyConfig(trainX, trainY, testX, testY string, norm *Normalize) Config {
	c := DefaultConfig()
	c.Dataset = KindNPY
	c.Train = &Arrays{X: trainX, Y: trainY}
	c.Test = &Arrays{X: testX, Y: testY}
	c.Normalize = norm
	return c
}

func norm(mean, std []float64) *Normalize { return &Normalize{Mean: mean, Std: std} }

// wantFloats reads a float32 fixture, or converts integer token ids.
func wantFloats(t *testing.T, name string) []float32 {
	t.Helper()
	a := parseFixture(t, name)
	if a.Kind == 'f' {
		return float32s(t, a)
	}
	ids, _, err := npyTokens(name, a)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values; want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v (%#08x); PyTorch gives %v (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

func TestLoadNPY(t *testing.T) {
	chw := norm([]float64{0.5, 0.4, 0.3}, []float64{0.2, 0.25, 0.3})
	tf := norm([]float64{0.1, 0.2, 0.3, 0.4, 0.5}, []float64{0.5, 0.4, 0.3, 0.2, 0.1})
	tests := []struct {
		name         string
		cfg          Config
		want         string // fixture of the expected train X (test X too when testWant is empty)
		testWant     string
		shape        []int
		trainY       []int32
		testY        []int32
		classes      int
		tokens       bool
		vocab        int
		isNormalized bool
	}{
		{"float32 as stored", npyConfig("x_f4_2d.npy", "y5_i8.npy", "x_f4_2d.npy", "y5_i8.npy", nil),
			"x_f4_2d.npy", "", []int{4}, []int32{0, 3, 1, 2, 9}, []int32{0, 3, 1, 2, 9}, 10, false, 0, false},
		{"float32 one mean and std", npyConfig("x_f4_2d.npy", "y5_i8.npy", "x_f4_2d.npy", "y5_i8.npy", norm([]float64{0.1}, []float64{0.7})),
			"want_f4_2d_norm.npy", "", []int{4}, []int32{0, 3, 1, 2, 9}, []int32{0, 3, 1, 2, 9}, 10, false, 0, true},
		{"float32 [C, H, W] per channel", npyConfig("x_f4_4d.npy", "y4_i8.npy", "x_f4_4d.npy", "y4_i4.npy", norm([]float64{0.5, -0.25, 1}, []float64{2, 0.5, 3})),
			"want_f4_4d_norm.npy", "", []int{3, 2, 2}, []int32{2, 0, 1, 1}, []int32{1, 0, 4, 2}, 5, false, 0, true},
		{"float32 [T, F] per feature, one mean", npyConfig("x_f4_3d.npy", "y4_u1.npy", "x_f4_3d.npy", "y4_u1.npy", norm([]float64{1}, []float64{0.25, 0.5, 1, 2, 4})),
			"want_f4_3d_norm.npy", "", []int{3, 5}, []int32{3, 3, 0, 1}, []int32{3, 3, 0, 1}, 4, false, 0, true},
		{"uint8 divided by 255", npyConfig("x_u1_4d.npy", "y4_i8.npy", "x_u1_4d.npy", "y4_i8.npy", nil),
			"want_u1_4d.npy", "", []int{3, 2, 2}, []int32{2, 0, 1, 1}, []int32{2, 0, 1, 1}, 3, false, 0, false},
		{"uint8 [C, H, W] per channel", npyConfig("x_u1_4d.npy", "y4_i8.npy", "x_u1_4d.npy", "y4_i8.npy", chw),
			"want_u1_4d_norm.npy", "", []int{3, 2, 2}, []int32{2, 0, 1, 1}, []int32{2, 0, 1, 1}, 3, false, 0, true},
		{"uint8 [T, F] per feature", npyConfig("x_u1_3d.npy", "y4_i8.npy", "x_u1_3d.npy", "y4_i8.npy", tf),
			"want_u1_3d_norm.npy", "", []int{3, 5}, []int32{2, 0, 1, 1}, []int32{2, 0, 1, 1}, 3, false, 0, true},
		{"uint8 [F] MNIST normalization", npyConfig("x_u1_2d.npy", "y5_i8.npy", "x_u1_2d.npy", "y5_i8.npy", norm([]float64{DefaultMean}, []float64{DefaultStd})),
			"want_u1_2d_norm.npy", "", []int{4}, []int32{0, 3, 1, 2, 9}, []int32{0, 3, 1, 2, 9}, 10, false, 0, true},
		{"Fortran order", npyConfig("x_u1_3d_fortran.npy", "y4_i8.npy", "x_u1_3d.npy", "y4_i8.npy", tf),
			"want_u1_3d_norm.npy", "", []int{3, 5}, []int32{2, 0, 1, 1}, []int32{2, 0, 1, 1}, 3, false, 0, true},
		{"big-endian, versions 2.0 and 3.0", npyConfig("x_f4_2d_be.npy", "y5_i8.npy", "x_f4_2d_v3.npy", "y5_i8.npy", nil),
			"x_f4_2d.npy", "x_f4_2d_v2.npy", []int{4}, []int32{0, 3, 1, 2, 9}, []int32{0, 3, 1, 2, 9}, 10, false, 0, false},
		{"different train and test", npyConfig("x_f4_4d.npy", "y4_i8_be.npy", "x_f4_4d_fortran.npy", "y4_u1.npy", nil),
			"x_f4_4d.npy", "", []int{3, 2, 2}, []int32{2, 0, 1, 1}, []int32{3, 3, 0, 1}, 4, false, 0, false},
		{"int64 token ids", npyConfig("x_i8_tok.npy", "y4_i8.npy", "x_i8_tok_be.npy", "y4_i8.npy", nil),
			"x_i8_tok.npy", "", []int{6}, []int32{2, 0, 1, 1}, []int32{2, 0, 1, 1}, 3, true, 1 << 24, false},
		{"int32 token ids", npyConfig("x_i4_tok.npy", "y4_i4.npy", "x_i4_tok.npy", "y4_i4.npy", nil),
			"x_i4_tok.npy", "", []int{6}, []int32{1, 0, 4, 2}, []int32{1, 0, 4, 2}, 5, true, 1 << 24, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "npy")
			ds, err := Load(tt.cfg, dir, 1)
			if err != nil {
				t.Fatal(err)
			}
			sameBits(t, "train X", ds.Train.X, wantFloats(t, tt.want))
			sameBits(t, "test X", ds.Test.X, wantFloats(t, cmpOr(tt.testWant, tt.want)))
			if !slices.Equal(ds.Train.Y, tt.trainY) || !slices.Equal(ds.Test.Y, tt.testY) {
				t.Fatalf("labels %v %v; want %v %v", ds.Train.Y, ds.Test.Y, tt.trainY, tt.testY)
			}
			features := 1
			for _, d := range tt.shape {
				features *= d
			}
			for _, s := range []*Split{ds.Train, ds.Test} {
				if !slices.Equal(s.Shape, tt.shape) || !slices.Equal(s.SampleShape(), tt.shape) || s.Features != features || s.N*features != len(s.X) {
					t.Fatalf("split shape %v features %d rows %d; want %v", s.Shape, s.Features, s.N, tt.shape)
				}
			}
			if ds.Kind != KindNPY || !slices.Equal(ds.Shape, tt.shape) || ds.Features != features || ds.Classes != tt.classes ||
				ds.Tokens != tt.tokens || ds.Vocab != tt.vocab || (ds.Normalize != nil) != tt.isNormalized || ds.ImageShape != nil || ds.Layout != "" {
				t.Fatalf("dataset %+v", ds)
			}
			if len(ds.Sources) != 4 || ds.Sources[0].Key != "train.x" || ds.Sources[3].Key != "test.y" ||
				ds.Sources[0].Path != filepath.Join(dir, tt.cfg.Train.X) || len(ds.Sources[2].SHA256) != 64 {
				t.Fatalf("sources %+v", ds.Sources)
			}
			quick, err := Fingerprint(tt.cfg, dir, 1)
			if err != nil || quick != ds.Fingerprint {
				t.Fatalf("Fingerprint %s, %v; Load's %s", quick, err, ds.Fingerprint)
			}
			info, err := Peek(tt.cfg, dir)
			if err != nil || !slices.Equal(info.Shape, tt.shape) || info.Tokens != tt.tokens || info.Train != ds.Train.N || info.Test != ds.Test.N {
				t.Fatalf("Peek %+v, %v", info, err)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestLoadNPYErrors(t *testing.T) {
	ok := func(c *Config) {}
	trainX := func(f string) func(*Config) { return func(c *Config) { c.Train.X = f } }
	trainY := func(f string) func(*Config) { return func(c *Config) { c.Train.Y = f } }
	tests := []struct {
		name string
		edit func(*Config) // of x_f4_4d.npy, y4_i8.npy for both splits
		key  string
		msg  string
	}{
		{"pickled objects", trainX("bad_object.npy"), "train.x", "bad_object.npy: holds Python objects (dtype object)"},
		{"structured", trainX("bad_structured.npy"), "train.x", "a structured array"},
		{"float64", trainX("bad_f8.npy"), "train.x", "bad_f8.npy is float64: x must be float32 (used as stored), uint8 (divided by 255) or int32/int64 token ids; save x.astype(numpy.float32)"},
		{"float16", trainX("bad_f2.npy"), "train.x", "is float16: x must be"},
		{"int16", trainX("bad_i2.npy"), "train.x", "is int16: x must be"},
		{"bool", trainX("bad_bool.npy"), "train.x", "is bool: x must be"},
		{"strings", trainX("bad_str.npy"), "train.x", "holds strings"},
		{"one dimension", trainX("bad_1d.npy"), "train.x", "bad_1d.npy has shape [5]: x needs a row per sample"},
		{"scalar", trainX("bad_scalar.npy"), "train.x", "has shape []"},
		{"no rows", trainX("bad_no_rows.npy"), "train.x", "holds no samples (shape [0, 4])"},
		{"empty rows", trainX("bad_empty_rows.npy"), "train.x", "holds empty samples (shape [3, 0])"},
		{"NaN", trainX("bad_nan.npy"), "train.x", "value NaN at sample 1 (flat index 2) is not finite"},
		{"infinity", trainX("bad_inf.npy"), "train.x", "value -Inf at sample 1 (flat index 3) is not finite"},
		{"token id too large", trainX("bad_tok_big.npy"), "train.x", "token id 16777216 at sample 0, position 1 is out of range: ids must be in [0, 16777216)"},
		{"negative token id", trainX("bad_tok_neg.npy"), "train.x", "token id -1 at sample 0, position 1"},
		{"token ids in 3-D", trainX("bad_tok_3d.npy"), "train.x", "token ids must be [N, T]"},
		{"truncated", trainX("bad_truncated.npy"), "train.x", "bad_truncated.npy: truncated"},
		{"npz", trainX("bad_archive.npz"), "train.x", "a zip archive"},
		{"labels of 2 dimensions", trainY("bad_y_2d.npy"), "train.y", "bad_y_2d.npy has shape [4, 1]: y must be [N]"},
		{"float labels", trainY("bad_y_f4.npy"), "train.y", "bad_y_f4.npy is float32: y must hold integer labels, int64, int32 or uint8; save y.astype(numpy.int64)"},
		{"negative label", trainY("bad_y_neg.npy"), "train.y", "label -1 at index 2 is out of range"},
		{"label beyond int32", trainY("bad_y_big.npy"), "train.y", "label 2147483648 at index 2"},
		{"label count", func(c *Config) { c.Test.Y = "bad_y_3.npy" }, "test.y", "bad_y_3.npy holds 3 labels but testdata/npy/x_f4_4d.npy holds 4 samples"},
		{"missing file", func(c *Config) { c.Test.Y = "nope.npy" }, "test.y", "no such file"},
		{"sample shapes differ", func(c *Config) { c.Test.X = "x_f4_3d.npy" }, "test.x", "x_f4_3d.npy holds samples of shape [3, 5] but the training inputs (testdata/npy/x_f4_4d.npy) hold [3, 2, 2]"},
		{"dtypes differ", func(c *Config) { c.Test.X = "x_u1_4d.npy" }, "test.x", "x_u1_4d.npy is uint8 but the training inputs (testdata/npy/x_f4_4d.npy) are float32"},
		{"channels differ", func(c *Config) { c.Normalize = norm([]float64{0.1, 0.2}, []float64{1}) }, "normalize",
			"2 values per channel, but the samples of testdata/npy/x_f4_4d.npy ([3, 2, 2]) have 3 channels"},
		{"normalized tokens", func(c *Config) {
			c.Train.X, c.Test.X = "x_i8_tok.npy", "x_i8_tok.npy"
			c.Normalize = norm([]float64{0}, []float64{1})
		}, "normalize", "normalize does not apply to token ids"},
		{"normalized beyond float32", func(c *Config) { c.Normalize = norm([]float64{0}, []float64{1e-44}) }, "train.x",
			"becomes +Inf after normalize, (x - mean) / std: beyond float32; check data.normalize"},
		{"normalized pixels beyond float32", func(c *Config) {
			c.Train.X, c.Test.X = "x_u1_4d.npy", "x_u1_4d.npy"
			c.Normalize = norm([]float64{0}, []float64{1e-44})
		}, "train.x", "pixel 1/255 becomes +Inf after (x - 0) / 1e-44, beyond float32: use a larger normalize.std"},
		{"ok", ok, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := npyConfig("x_f4_4d.npy", "y4_i8.npy", "x_f4_4d.npy", "y4_i8.npy", nil)
			tt.edit(&cfg)
			_, err := Load(cfg, filepath.Join("testdata", "npy"), 1)
			if tt.key == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Path != tt.key || !strings.Contains(fe.Msg, tt.msg) {
				t.Fatalf("got %v; want a FieldError on %s containing %q", err, tt.key, tt.msg)
			}
		})
	}
	// The cause stays reachable, and the checks before a run see a missing file.
	cfg := npyConfig("x_f4_4d.npy", "y4_i8.npy", "missing.npy", "y4_i8.npy", nil)
	if _, err := Load(cfg, filepath.Join("testdata", "npy"), 1); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v; want fs.ErrNotExist", err)
	}
	errs := CheckFiles(cfg, filepath.Join("testdata", "npy"))
	if len(errs) != 1 || errs[0].Path != "test.x" || !strings.Contains(errs[0].Msg, "missing.npy: no such file") {
		t.Fatalf("CheckFiles: %v", errs)
	}
	if _, err := Peek(cfg, filepath.Join("testdata", "npy")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Peek: %v", err)
	}
}

func TestNPYFingerprint(t *testing.T) {
	src := filepath.Join("testdata", "npy")
	dir := t.TempDir()
	for _, f := range []string{"x_f4_4d.npy", "y4_i8.npy", "x_u1_4d.npy"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, f, b)
	}
	base := npyConfig("x_f4_4d.npy", "y4_i8.npy", "x_f4_4d.npy", "y4_i8.npy", nil)
	fp := func(cfg Config, dir string, seed uint64) string {
		t.Helper()
		ds, err := Load(cfg, dir, seed)
		if err != nil {
			t.Fatal(err)
		}
		quick, err := Fingerprint(cfg, dir, seed)
		if err != nil || quick != ds.Fingerprint {
			t.Fatalf("Fingerprint = %q, %v; Load's is %q", quick, err, ds.Fingerprint)
		}
		return ds.Fingerprint
	}
	ref := fp(base, src, 1)
	for name, got := range map[string]string{
		"files moved":  fp(base, dir, 1),
		"other seed":   fp(base, src, 2),
		"batch size":   fp(func() Config { c := base; c.BatchSize = 3; return c }(), src, 1),
		"absolute dir": fp(base, must(filepath.Abs(src)), 1),
	} {
		if got != ref {
			t.Errorf("%s changed the fingerprint", name)
		}
	}
	changed := map[string]string{
		"reference":      ref,
		"normalize":      fp(func() Config { c := base; c.Normalize = norm([]float64{0.5}, []float64{2}); return c }(), src, 1),
		"normalize list": fp(func() Config { c := base; c.Normalize = norm([]float64{0.5, 0.5, 0.5}, []float64{2}); return c }(), src, 1),
		"other mean":     fp(func() Config { c := base; c.Normalize = norm([]float64{0.5, 0.5, 0.25}, []float64{2}); return c }(), src, 1),
		"test labels":    fp(func() Config { c := base; c.Test = &Arrays{X: "x_f4_4d.npy", Y: "y4_i4.npy"}; return c }(), src, 1),
		"train and test swapped": fp(func() Config {
			c := base
			c.Train = &Arrays{X: "x_f4_4d.npy", Y: "y4_i4.npy"}
			c.Test = &Arrays{X: "x_f4_4d.npy", Y: "y4_i8.npy"}
			return c
		}(), src, 1),
		"validation split": fp(func() Config { c := base; c.ValidationSplit = 0.25; return c }(), src, 1),
	}
	// One changed byte of data.
	b, _ := os.ReadFile(filepath.Join(dir, "x_f4_4d.npy"))
	b[len(b)-1] ^= 1
	writeFile(t, dir, "x_f4_4d.npy", b)
	changed["one byte"] = fp(base, dir, 1)
	seen := map[string]string{}
	for name, got := range changed {
		if prev, dup := seen[got]; dup {
			t.Errorf("%s and %s give the same fingerprint", name, prev)
		}
		seen[got] = name
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
