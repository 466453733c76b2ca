package data

import (
	"testing"
)

// pinnedIDX writes four raw (uncompressed, so the bytes do not depend on the Go
// version's DEFLATE) IDX files into dir and returns an idx config naming them. With
// rows = cols = 28 and the MNIST file names they also form an mnist folder.
func pinnedIDX(t testing.TB, dir string, rows, cols int) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dataset = KindIDX
	writeFile(t, dir, "train-images-idx3-ubyte", idxImages(6, rows, cols, nil))
	writeFile(t, dir, "train-labels-idx1-ubyte", idxLabels(0, 1, 2, 3, 4, 5))
	writeFile(t, dir, "t10k-images-idx3-ubyte", idxImages(3, rows, cols, nil))
	writeFile(t, dir, "t10k-labels-idx1-ubyte", idxLabels(9, 8, 7))
	cfg.TrainImages, cfg.TrainLabels = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
	cfg.TestImages, cfg.TestLabels = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
	return cfg
}

// TestFingerprintsPinned pins the fingerprints of configurations that existed
// before fashion-mnist, npy and layouts: stage keys and cached checkpoints of
// existing runs stay valid only while these bytes stay the same. A change here
// is a change of every existing cache key; it needs a new fingerprintVersion
// and a note in docs/DATA.md, never a silent update of these values.
func TestFingerprintsPinned(t *testing.T) {
	idx := func(edit func(*Config)) func(t *testing.T, dir string) Config {
		return func(t *testing.T, dir string) Config {
			c := pinnedIDX(t, dir, 4, 3)
			if edit != nil {
				edit(&c)
			}
			return c
		}
	}
	mnistPath := func(edit func(*Config)) func(t *testing.T, dir string) Config {
		return func(t *testing.T, dir string) Config {
			pinnedIDX(t, dir, 28, 28)
			c := DefaultConfig()
			c.Path = "."
			if edit != nil {
				edit(&c)
			}
			return c
		}
	}
	synthetic := func(edit func(*Config)) func(t *testing.T, dir string) Config {
		return func(t *testing.T, dir string) Config {
			c := DefaultConfig()
			c.Dataset = KindSynthetic
			if edit != nil {
				edit(&c)
			}
			return c
		}
	}
	tests := []struct {
		name string
		cfg  func(t *testing.T, dir string) Config
		seed uint64
		want string
	}{
		{"idx", idx(nil), 1, "a058651bb997fb4d09e4ecc495beb245775924cec1e6a16733e3e2d5787d51e4"},
		{"idx seed ignored", idx(nil), 9, "a058651bb997fb4d09e4ecc495beb245775924cec1e6a16733e3e2d5787d51e4"},
		{"idx classes 26", idx(func(c *Config) { c.Classes = 26 }), 1, "8d8d4b5de75b57430eb0f3ee11ee92ed0c9257dbc1b7a1d8283523284ad143af"},
		{"idx normalize", idx(func(c *Config) { c.Normalize = &Normalize{Mean: Channels{0.5}, Std: Channels{0.25}} }), 1, "2f639d155149dd9307399261090d0761ce48596d108c2d21e58da04c2fe16bc5"},
		{"idx validation", idx(func(c *Config) { c.ValidationSplit = 0.2 }), 3, "2654e2a10eea3eff767acdc7bf428f692a6e021bc41048a6f1de305571f89103"},
		{"mnist path", mnistPath(nil), 1, "ceee97c30a80cb242c4425b57b4cf1dbaba3056b0a3262357da3436d217d3e3c"},
		{"mnist path normalize", mnistPath(func(c *Config) { c.Normalize = &Normalize{Mean: Channels{0.1}, Std: Channels{0.2}} }), 1, "d751da5b597e54f3f434451130119b964ca2d0289ad24118eed4dc6846a9ebfa"},
		{"mnist path validation", mnistPath(func(c *Config) { c.ValidationSplit = 0.5 }), 42, "f4672e7eee8b52e621f6ff05d96a8738676fe922b2c62ec56ed44a645fd46133"},
		{"synthetic", synthetic(nil), 1, "48bcc49265fde4c521017f61574a76086c4babdf402bc0521ba5681da9bca5f4"},
		{"synthetic seed 7", synthetic(nil), 7, "cb3c0609a75123d32f10da94ff34449a50e23c2de83a5ab69d34a61d2a3064b7"},
		{"synthetic params", synthetic(func(c *Config) { c.Features, c.Classes, c.Samples = 5, 3, 40 }), 1, "9f5ec9fbef0dd9a9d6c9c0676d0364a4686d749b84bc204e9e739604a7336ef9"},
		{"synthetic validation", synthetic(func(c *Config) { c.ValidationSplit = 0.1 }), 1, "81ada7c9e76aa03ccbfda2cfd473f02c22cff9d2d22410b8ed4716c1714367eb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := tt.cfg(t, dir)
			got, err := Fingerprint(cfg, dir, tt.seed)
			if err != nil {
				t.Fatal(err)
			}
			ds, err := Load(cfg, dir, tt.seed)
			if err != nil {
				t.Fatal(err)
			}
			if ds.Fingerprint != got {
				t.Fatalf("Load's fingerprint %s, Fingerprint's %s", ds.Fingerprint, got)
			}
			if got != tt.want {
				t.Errorf("fingerprint %s; pinned %s", got, tt.want)
			}
		})
	}
}
