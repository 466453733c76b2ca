package checkpoint

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRead: Read never panics, never allocates beyond allocBound, and every file it
// accepts has a JSON header (per encoding/json) with exactly the keys it reported, and
// re-encodes to a file that reads back to the same tensors and re-encodes to the same
// bytes.
func FuzzRead(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join(testdataDir, "*.safetensors"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, tc := range malformedCases() {
		f.Add(tc.file)
	}
	f.Add(rawFile(`{"\ud83d\ude00":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"__metadata__":null}`, nil))
	f.Add(rawFile("{"+entry("a", "U8", "[0]", "[0,0]")+","+entry("b", "U8", "[1]", "[0,1]")+"}", []byte{9}))

	f.Fuzz(func(t *testing.T, b []byte) {
		var file *File
		var err error
		if n := allocated(func() { file, err = readBytes(b) }); n > allocBound(len(b)) {
			t.Fatalf("Read of %d bytes allocated %d bytes", len(b), n)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "checkpoint: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		// Differential check against encoding/json: valid JSON, same top-level keys.
		n := le64(b)
		hdr := b[8 : 8+n]
		if !json.Valid(hdr) {
			t.Fatalf("accepted a header encoding/json rejects: %q", hdr)
		}
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(hdr, &keys); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		_, hasMeta := keys[metadataKey]
		if want := len(file.Tensors) + map[bool]int{true: 1}[hasMeta]; len(keys) != want {
			t.Fatalf("encoding/json sees %d keys, Read %d tensors (metadata %v)", len(keys), len(file.Tensors), hasMeta)
		}
		for _, x := range file.Tensors {
			if _, ok := keys[x.Name]; !ok {
				t.Fatalf("encoding/json does not see tensor %q", x.Name)
			}
			if err := x.Validate(); err != nil {
				t.Fatalf("accepted an invalid tensor: %v", err)
			}
		}
		enc, err := Marshal(file)
		if err != nil {
			t.Fatalf("accepted file does not re-encode: %v", err)
		}
		again, err := readBytes(enc)
		if err != nil {
			t.Fatalf("re-encoded file does not read: %v", err)
		}
		if d := diffFiles(file, again); d != "" {
			t.Fatalf("re-encoded file differs: %s", d)
		}
		if enc2 := mustMarshal(t, again); !bytes.Equal(enc, enc2) {
			t.Fatal("encoding is not stable")
		}
	})
}

// FuzzEncode: any valid File (arbitrary names and metadata strings, any dtype and small
// shape) encodes, reads back to the same tensors and metadata, and re-encodes to the same
// bytes; an invalid one is refused by Encode.
func FuzzEncode(f *testing.F) {
	f.Add("fc1.weight", "fc1.bias", "format", "pt", uint8(1), uint8(2), uint8(3), []byte("0123456789abcdef"))
	f.Add("caf\u00e9 \"\\\n\x00", "\U0001F600", "\u2028<&>", "\x1f", uint8(12), uint8(0), uint8(5), []byte{1})
	f.Add("a\xff", "a", "", "", uint8(99), uint8(1), uint8(1), []byte{})
	f.Fuzz(func(t *testing.T, name1, name2, key, val string, dt, d0, d1 uint8, data []byte) {
		dtype := DType("X")
		if int(dt) < len(DTypes) {
			dtype = DTypes[dt]
		}
		shape := []int{int(d0 % 8), int(d1 % 8)}
		need, _ := byteSize(shape, dtype)
		buf := make([]byte, need)
		copy(buf, data)
		file := &File{
			Metadata: map[string]string{key: val},
			Tensors: []Tensor{
				{Name: name1, DType: dtype, Shape: shape, Data: buf},
				U8(name2, []int{len(data)}, data),
			},
		}
		enc, err := Marshal(file)
		if file.Validate() != nil {
			if err == nil {
				t.Fatal("Marshal accepted an invalid file")
			}
			return
		}
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		got, err := readBytes(enc)
		if err != nil {
			t.Fatalf("Read(Marshal(f)): %v", err)
		}
		if d := diffFiles(file, got); d != "" {
			t.Fatal(d)
		}
		if !bytes.Equal(mustMarshal(t, got), enc) {
			t.Fatal("encoding is not stable")
		}
		if n := le64(enc); n%8 != 0 || !json.Valid(enc[8:8+n]) {
			t.Fatalf("header length %d, JSON valid %v", n, json.Valid(enc[8:8+n]))
		}
	})
}
