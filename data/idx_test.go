package data

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseIDXImages(t *testing.T) {
	valid := idxImages(3, 2, 2, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	tests := []struct {
		name string
		in   []byte
		err  string // phrase the error must contain; "" for success
	}{
		{"valid", valid, ""},
		{"valid single pixel", idxImages(1, 1, 1, []byte{255}), ""},
		{"valid zero images", idxImages(0, 28, 28, nil), ""},
		{"empty", nil, "truncated: 0 bytes, an IDX images header needs 16"},
		{"short header", valid[:10], "truncated: 10 bytes, an IDX images header needs 16"},
		{"label file", idxLabels(1, 2, 3), "bad magic 0x00000801: this is an IDX label file (1 dimension); expected an IDX images file (magic 0x00000803)"},
		{"not idx", []byte("hello, world, this is text"), "bad magic 0x68656c6c: not an IDX file"},
		{"float elements", cat([]byte{0, 0, 0x0d, 3}, valid[4:]), "bad magic 0x00000d03: element type 0x0d is not supported"},
		{"two dims", cat([]byte{0, 0, 8, 2}, valid[4:]), "bad magic 0x00000802: an IDX file with 2 dimensions"},
		{"zero rows", idxImages(1, 0, 3, []byte{}), "bad dimensions: header says images of 0x3"},
		{"huge cols", cat(idxImages(1, 1, 1, nil)[:12], []byte{0, 1, 0, 0}), "bad dimensions: header says images of 1x65536"},
		{"truncated body", valid[:len(valid)-5], "truncated: header says 3 images of 2x2, file holds 1 and 3 bytes of the next"},
		{"truncated whole images", valid[:len(valid)-4], "truncated: header says 3 images of 2x2, file holds 2"},
		{"header only", valid[:16], "truncated: header says 3 images of 2x2, file holds 0"},
		{"huge count", cat([]byte{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x10, 0, 0, 0, 0x10, 0}, []byte{1, 2, 3}), "truncated: header says 4294967295 images of 4096x4096, file holds 0"},
		{"trailing data", cat(valid, []byte{1, 2}), "trailing data after the 3 images the header declares"},
	}
	for _, tt := range tests {
		for _, compressed := range []bool{false, true} {
			in, mode := tt.in, "raw"
			if compressed {
				in, mode = gz(tt.in), "gz"
			}
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				im, err := ParseIDXImages("imgs.idx", in)
				if tt.err != "" {
					if err == nil {
						t.Fatalf("no error; want %q", tt.err)
					}
					if !strings.HasPrefix(err.Error(), "imgs.idx: ") || !strings.Contains(err.Error(), tt.err) {
						t.Fatalf("error %q; want it to start with the file name and contain %q", err, tt.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if want := tt.in[16:]; im.N*im.Rows*im.Cols != len(want) || !bytes.Equal(im.Pixels, want) {
					t.Fatalf("got %d images of %dx%d %v; want pixels %v", im.N, im.Rows, im.Cols, im.Pixels, want)
				}
			})
		}
	}
}

func TestParseIDXLabels(t *testing.T) {
	valid := idxLabels(5, 0, 4, 1, 9)
	tests := []struct {
		name string
		in   []byte
		err  string
	}{
		{"valid", valid, ""},
		{"valid empty", idxLabels(), ""},
		{"short header", valid[:7], "truncated: 7 bytes, an IDX labels header needs 8"},
		{"short wrong magic", []byte{0, 0, 8, 3, 0}, "bad magic 0x00000803: this is an IDX image file (3 dimensions); expected an IDX labels file (magic 0x00000801)"},
		{"image file", idxImages(1, 1, 1, []byte{1}), "bad magic 0x00000803"},
		{"truncated", valid[:len(valid)-1], "truncated: header says 5 labels, file holds 4"},
		{"trailing data", cat(valid, []byte{7}), "trailing data after the 5 labels"},
	}
	for _, tt := range tests {
		for _, compressed := range []bool{false, true} {
			in, mode := tt.in, "raw"
			if compressed {
				in, mode = gz(tt.in), "gz"
			}
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				got, err := ParseIDXLabels("train-labels-idx1-ubyte.gz", in)
				if tt.err != "" {
					if err == nil || !strings.HasPrefix(err.Error(), "train-labels-idx1-ubyte.gz: ") || !strings.Contains(err.Error(), tt.err) {
						t.Fatalf("error %v; want one naming the file and containing %q", err, tt.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.in[8:]) {
					t.Fatalf("got %v; want %v", got, tt.in[8:])
				}
			})
		}
	}
}

// Damage that only a compressed file can have.
func TestParseIDXGzipDamage(t *testing.T) {
	valid := gz(idxLabels(1, 2, 3, 4, 5, 6, 7, 8, 9))
	badCRC := bytes.Clone(valid)
	badCRC[len(badCRC)-8] ^= 0xff // the CRC-32 in the trailer
	tests := []struct {
		name string
		in   []byte
		err  string
	}{
		{"cut stream", valid[:len(valid)-12], "truncated"},
		{"cut inside gzip header", valid[:5], "not a valid gzip file"},
		{"bad checksum", badCRC, "gzip: invalid checksum"},
		{"garbage deflate", cat(valid[:10], bytes.Repeat([]byte{0xff}, 20)), "corrupt gzip data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseIDXLabels("l.gz", tt.in)
			if err == nil || !strings.HasPrefix(err.Error(), "l.gz: ") || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v; want one containing %q", err, tt.err)
			}
		})
	}
}

// A gzip file whose header claims far more than it holds must not make the parser
// reserve what the header claims.
func TestParseIDXGzipReservesByInput(t *testing.T) {
	hdr := []byte{0, 0, 8, 3, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0x10, 0, 0, 0, 0x10, 0}
	in := gz(hdr)
	allocs := allocatedBytes(func() { ParseIDXImages("x", in) })
	if limit := uint64(len(in))*maxInflateRatio + 1<<20; allocs > limit {
		t.Fatalf("allocated %d bytes for a %d-byte input; want at most %d", allocs, len(in), limit)
	}
}
