package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// idxImages builds an IDX image file of n images of rows×cols; pix (may be nil)
// supplies the pixels, else pixel i is byte(i*7).
func idxImages(n, rows, cols int, pix []byte) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, idxImagesMagic)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint32(b, uint32(rows))
	b = binary.BigEndian.AppendUint32(b, uint32(cols))
	if pix == nil {
		pix = make([]byte, n*rows*cols)
		for i := range pix {
			pix[i] = byte(i * 7)
		}
	}
	return append(b, pix...)
}

// idxLabels builds an IDX label file.
func idxLabels(labels ...byte) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, idxLabelsMagic)
	b = binary.BigEndian.AppendUint32(b, uint32(len(labels)))
	return append(b, labels...)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tinyIDX writes a small idx dataset into dir (train: 10 images of 4x3, gzip; test:
// 5 images, raw) and returns a Config naming it with paths relative to dir.
func tinyIDX(t testing.TB, dir string) Config {
	t.Helper()
	writeFile(t, dir, "train-images.gz", gz(idxImages(10, 4, 3, nil)))
	writeFile(t, dir, "train-labels.gz", gz(idxLabels(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)))
	writeFile(t, dir, "test-images", idxImages(5, 4, 3, nil))
	writeFile(t, dir, "test-labels", idxLabels(9, 8, 7, 6, 5))
	cfg := DefaultConfig()
	cfg.Dataset = KindIDX
	cfg.TrainImages, cfg.TrainLabels = "train-images.gz", "train-labels.gz"
	cfg.TestImages, cfg.TestLabels = "test-images", "test-labels"
	return cfg
}
