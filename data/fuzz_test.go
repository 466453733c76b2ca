package data

import (
	"runtime"
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
