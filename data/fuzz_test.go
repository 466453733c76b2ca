package data

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// allocatedBytes reports the bytes allocated on the heap while f runs.
func allocatedBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzParseIDX feeds arbitrary bytes to both IDX parsers: they must never panic,
// must return data consistent with the header on success, and must never allocate
// much more than the input can hold (a raw input's data is returned in place; a gzip
// input can inflate at most maxInflateRatio times).
func FuzzParseIDX(f *testing.F) {
	img := idxImages(2, 3, 2, nil)
	lbl := idxLabels(3, 1, 4)
	for _, seed := range [][]byte{
		img, gz(img), lbl, gz(lbl),
		img[:20], gz(img[:20]), lbl[:9], gz(lbl)[:20],
		cat(img, []byte{0}), gz(cat(lbl, []byte{0})),
		{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x10, 0, 0, 0, 0x10, 0},
		gz([]byte{0, 0, 8, 1, 0xff, 0xff, 0xff, 0xff}),
		{0x1f, 0x8b}, {}, []byte("not an idx file at all"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		limit := uint64(64 << 10)
		if isGzip(in) {
			limit = uint64(len(in))*maxInflateRatio + 1<<20
		}
		var im *Images
		var ierr error
		if a := allocatedBytes(func() { im, ierr = ParseIDXImages("f", in) }); a > limit {
			t.Fatalf("ParseIDXImages allocated %d bytes for %d input bytes (limit %d)", a, len(in), limit)
		}
		if ierr == nil {
			if len(im.Pixels) != im.N*im.Rows*im.Cols || im.Rows < 1 || im.Cols < 1 {
				t.Fatalf("inconsistent result: %d pixels for %d images of %dx%d", len(im.Pixels), im.N, im.Rows, im.Cols)
			}
			if !isGzip(in) && len(in) != 16+len(im.Pixels) {
				t.Fatalf("accepted %d bytes holding %d pixels", len(in), len(im.Pixels))
			}
		}
		var labels []byte
		var lerr error
		if a := allocatedBytes(func() { labels, lerr = ParseIDXLabels("f", in) }); a > limit {
			t.Fatalf("ParseIDXLabels allocated %d bytes for %d input bytes (limit %d)", a, len(in), limit)
		}
		if lerr == nil && !isGzip(in) && len(in) != 8+len(labels) {
			t.Fatalf("accepted %d bytes holding %d labels", len(in), len(labels))
		}
		if ierr == nil && lerr == nil {
			t.Fatal("input accepted as both images and labels")
		}
	})
}

// FuzzParseNPY feeds arbitrary bytes to the .npy parser: it must never panic,
// must return data consistent with the shape on success, must allocate at most a
// copy of the input (big-endian or Fortran data is converted into one) plus the
// bounded header, and what it accepts must survive EncodeNPY and a second parse.
func FuzzParseNPY(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "npy"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join("testdata", "npy", e.Name())); err == nil && len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Add([]byte(npyMagic + "\x01\x00\x10\x00{'descr':'<f4'}"))
	f.Add([]byte(npyMagic + "\x02\x00\x30\x00\x00\x00{'descr':'>i8','fortran_order':True,'shape':(2,1,2)}" + strings.Repeat("\x01", 32)))
	f.Fuzz(func(t *testing.T, in []byte) {
		var a *NPY
		var err error
		limit := uint64(3*len(in)) + 256<<10
		if n := allocatedBytes(func() { a, err = ParseNPY("f", in) }); n > limit {
			t.Fatalf("ParseNPY allocated %d bytes for %d input bytes (limit %d)", n, len(in), limit)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(a.Data) != a.Len()*a.Size || len(a.Shape) > maxNPYDims {
			t.Fatalf("inconsistent result: %d bytes for %s %v", len(a.Data), a.Dtype(), a.Shape)
		}
		b, err := ParseNPY("g", EncodeNPY(a))
		if err != nil {
			t.Fatalf("EncodeNPY of an accepted array does not parse: %v", err)
		}
		if b.Kind != a.Kind || b.Size != a.Size || !slices.Equal(b.Shape, a.Shape) || !bytes.Equal(b.Data, a.Data) {
			t.Fatalf("round trip changed %s %v into %s %v", a.Dtype(), a.Shape, b.Dtype(), b.Shape)
		}
	})
}
