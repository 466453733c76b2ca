package data

import (
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
)

// Info is what a data section's files say of their rows, read from the files'
// headers only: cheap on any dataset size, for validation and for defaults (the
// model's input shape) before a run loads the data.
type Info struct {
	Shape       []int // one sample's shape, as Split.Shape
	Tokens      bool  // x holds integer token ids (npy int32 or int64)
	Train, Test int   // rows of the training and test files, before any validation split
}

// Peek returns what the data section's files say of their rows without decoding
// them: the headers of the image files (mnist, fashion-mnist, idx) or of the x
// arrays (npy), or the parameters of synthetic data. Errors name the key as Load's
// do. Peek does not check what only the data can tell (labels, values).
func Peek(cfg Config, baseDir string) (*Info, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Dataset == KindSynthetic {
		n := cfg.Samples * 4 / 5
		return &Info{Shape: []int{cfg.Features}, Train: n, Test: cfg.Samples - n}, nil
	}
	files, err := sourceFiles(&cfg, baseDir)
	if err != nil {
		return nil, err
	}
	trf, tef := files[0], files[2]
	if cfg.Dataset == KindNPY {
		var hdr [2]*NPY
		for k, f := range []sourceFile{trf, tef} {
			a, err := ReadNPYHeader(f.path)
			if err != nil {
				return nil, &FieldError{Path: f.key, Msg: err.Error(), Err: err}
			}
			if len(a.Shape) < 2 {
				return nil, fieldErr(f.key, "%s has shape %s: x needs a row per sample, shape [N, ...] with at least 2 dimensions", f.path, shapeString(a.Shape))
			}
			hdr[k] = a
		}
		if !slices.Equal(hdr[0].Shape[1:], hdr[1].Shape[1:]) {
			return nil, fieldErr(tef.key, "%s holds samples of shape %s but the training inputs (%s) hold %s: train and test need the same sample shape",
				tef.path, shapeString(hdr[1].Shape[1:]), trf.path, shapeString(hdr[0].Shape[1:]))
		}
		return &Info{Shape: slices.Clone(hdr[0].Shape[1:]), Tokens: hdr[0].Kind == 'i', Train: hdr[0].Shape[0], Test: hdr[1].Shape[0]}, nil
	}
	var dims [2][3]int
	for k, f := range []sourceFile{trf, tef} {
		d, err := readIDXHeader(f.path, 3)
		if err != nil {
			return nil, &FieldError{Path: f.key, Msg: err.Error(), Err: err}
		}
		dims[k] = d
	}
	if dims[0][1] != dims[1][1] || dims[0][2] != dims[1][2] {
		return nil, fieldErr(tef.key, "%s holds images of %dx%d but the training images (%s) are %dx%d",
			tef.path, dims[1][1], dims[1][2], trf.path, dims[0][1], dims[0][2])
	}
	if cfg.Dataset != KindIDX && (dims[0][1] != mnistRows || dims[0][2] != mnistCols) {
		return nil, fieldErr("path", "%s holds images of %dx%d; %s images are %dx%d", trf.path, dims[0][1], dims[0][2], displayName(cfg.Dataset), mnistRows, mnistCols)
	}
	return &Info{Shape: imageShape(dims[0][1], dims[0][2], cfg.Layout), Train: dims[0][0], Test: dims[1][0]}, nil
}

// readIDXHeader reads the header of an IDX file of unsigned bytes with ndim
// dimensions (1 or 3), raw or gzip, without reading the data.
func readIDXHeader(path string, ndim int) (dims [3]int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return dims, err
	}
	defer f.Close()
	var r io.Reader = f
	var magic [2]byte
	if n, _ := io.ReadFull(f, magic[:]); n == 2 && isGzip(magic[:]) {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return dims, err
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			return dims, fmt.Errorf("%s: not a valid gzip file: %w", path, err)
		}
		r = zr
	} else if _, err := f.Seek(0, io.SeekStart); err != nil {
		return dims, err
	}
	hdr := make([]byte, 4+4*ndim)
	got, err := io.ReadFull(r, hdr)
	if got >= 4 {
		if err := checkMagic(path, hdr[:4], ndim); err != nil {
			return dims, err
		}
	}
	if err != nil {
		return dims, fmt.Errorf("%s: truncated: %d bytes, an IDX %s header needs %d", path, got, what(ndim), len(hdr))
	}
	dims[0] = int(binary.BigEndian.Uint32(hdr[4:8]))
	if ndim == 3 {
		dims[1], dims[2] = int(binary.BigEndian.Uint32(hdr[8:12])), int(binary.BigEndian.Uint32(hdr[12:16]))
	}
	return dims, nil
}
