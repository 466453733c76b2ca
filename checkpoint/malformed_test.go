package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"runtime/metrics"
	"strings"
	"testing"
)

type malformedCase struct {
	name string
	file []byte
	want string // a phrase the error must contain
}

// entry is a header entry for tensor name.
func entry(name, dtype, shape, offsets string) string {
	return `"` + name + `":{"dtype":"` + dtype + `","shape":` + shape + `,"data_offsets":` + offsets + `}`
}

// malformedCases are files Read must reject, each with the phrase its error must contain.
// They also seed FuzzRead.
func malformedCases() []malformedCase {
	data8 := make([]byte, 8)
	okEntry := entry("a", "F32", "[2]", "[0,8]")
	valid := rawFile("{"+okEntry+"}", data8)
	return []malformedCase{
		{"empty file", nil, "file is 0 bytes, shorter than the 8-byte header length"},
		{"7 bytes", []byte{1, 0, 0, 0, 0, 0, 0}, "file is 7 bytes"},
		{"huge header length", withLength(1<<62, []byte("{}")), "header length 4611686018427387904 exceeds the limit of 100000000 bytes"},
		{"max uint64 header length", withLength(^uint64(0), nil), "exceeds the limit"},
		{"header length past the file", withLength(100, []byte(`{"a":1}`)), "header length 100 exceeds the file size (15 bytes, 7 after the length)"},
		{"truncated in the header", valid[:20], "exceeds the file size"},
		{"truncated in the data", valid[:len(valid)-1], `tensor "a": data_offsets [0, 8] run past the end of the 7-byte data buffer`},
		{"zero header length", withLength(0, data8), "header is empty"},
		{"not JSON", rawFile(`{"a":`, nil), "header is not valid JSON"},
		{"trailing comma", rawFile("{"+okEntry+",}", data8), "expected a string at byte"},
		{"missing comma", rawFile("{"+okEntry+` "b":1}`, data8), "expected ',' or '}'"},
		{"unterminated string", rawFile(`{"abc`, nil), "unterminated string"},
		{"bad escape", rawFile(`{"a\x":1}`, nil), "a valid escape"},
		{"control character in key", rawFile("{\"a\nb\":1}", nil), "no control characters"},
		{"lone surrogate", rawFile(`{"\ud800":1}`, nil), `lone UTF-16 surrogate \ud800`},
		{"lone low surrogate", rawFile(`{"x\udc00y":1}`, nil), "lone UTF-16 surrogate"},
		{"not an object", rawFile(`[1,2]`, nil), "header is not a JSON object: it starts with '['"},
		{"leading whitespace", rawFile(` {}`, nil), "it starts with ' '"},
		{"not UTF-8", rawFile("{\"caf\xe9\":1}", nil), "header is not valid UTF-8 (byte 0xe9 at offset 5)"},
		{"garbage after the object", rawFile(`{} {}`, nil), "header has '{' at byte 3 after the JSON object"},
		{"NUL padding", rawFile("{}\x00\x00", nil), `header has '\x00' at byte 2`},
		{"entry not an object", rawFile(`{"a":5}`, nil), `tensor "a": entry must be an object with dtype, shape and data_offsets, found a number`},
		{"missing dtype", rawFile(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, data8), `tensor "a": entry is missing dtype`},
		{"missing shape", rawFile(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, data8), "entry is missing shape"},
		{"missing data_offsets", rawFile(`{"a":{"dtype":"F32","shape":[2]}}`, data8), "entry is missing data_offsets"},
		{"extra field", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"note":"x"}}`, data8), `tensor "a": unexpected field "note"`},
		{"duplicate field", rawFile(`{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, data8), `tensor "a": duplicate field "dtype"`},
		{"unknown dtype", rawFile("{"+entry("a", "F128", "[2]", "[0,8]")+"}", data8), `tensor "a": unknown dtype "F128"`},
		{"lower-case dtype", rawFile("{"+entry("a", "f32", "[2]", "[0,8]")+"}", data8), `unknown dtype "f32"`},
		{"dtype not a string", rawFile(`{"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}`, data8), "dtype must be a string, found a number"},
		{"shape not an array", rawFile(`{"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}`, data8), "shape must be an array"},
		{"shape of strings", rawFile("{"+entry("a", "F32", `["2"]`, "[0,8]")+"}", data8), "shape must hold non-negative integers, found a string"},
		{"negative dim", rawFile("{"+entry("a", "F32", "[-2]", "[0,8]")+"}", data8), "shape value -2 is negative"},
		{"fractional dim", rawFile("{"+entry("a", "F32", "[2.0]", "[0,8]")+"}", data8), "shape value 2.0 is not an integer"},
		{"exponent dim", rawFile("{"+entry("a", "F32", "[2e0]", "[0,8]")+"}", data8), "is not an integer"},
		{"leading zero", rawFile("{"+entry("a", "F32", "[02]", "[0,8]")+"}", data8), "no leading zeros"},
		{"dim beyond uint64", rawFile("{"+entry("a", "F32", "[18446744073709551616]", "[0,8]")+"}", data8), "shape value 18446744073709551616 is too large"},
		{"dim beyond int", rawFile("{"+entry("a", "F32", "[9223372036854775808]", "[0,8]")+"}", data8), "shape dim 9223372036854775808 is too large"},
		{"element count overflow", rawFile("{"+entry("a", "U8", "[4294967296,4294967296]", "[0,8]")+"}", data8), "shape [4294967296 4294967296]: element count overflows"},
		{"byte size overflow", rawFile("{"+entry("a", "F64", "[4611686018427387904]", "[0,8]")+"}", data8), "byte size overflows"},
		{"offsets not an array", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":"0-8"}}`, data8), "data_offsets must be an array of two non-negative integers"},
		{"one offset", rawFile("{"+entry("a", "F32", "[2]", "[8]")+"}", data8), "data_offsets has 1 number, want 2"},
		{"three offsets", rawFile("{"+entry("a", "F32", "[2]", "[0,8,16]")+"}", data8), "data_offsets has more than 2 numbers"},
		{"no offsets", rawFile("{"+entry("a", "F32", "[2]", "[]")+"}", data8), "data_offsets has 0 numbers"},
		{"negative offset", rawFile("{"+entry("a", "F32", "[2]", "[-8,0]")+"}", data8), "data_offsets value -8 is negative"},
		{"begin after end", rawFile("{"+entry("a", "F32", "[2]", "[8,0]")+"}", data8), `tensor "a": data_offsets [8, 0] begin after they end`},
		{"offsets past the buffer", rawFile("{"+entry("a", "F32", "[2]", "[8,16]")+"}", data8), "run past the end of the 8-byte data buffer"},
		{"huge offsets", rawFile("{"+entry("a", "F32", "[2]", "[18446744073709551607,18446744073709551615]")+"}", data8), "run past the end"},
		{"shape mismatch", rawFile("{"+entry("fc1.weight", "F32", "[8,6]", "[0,100]")+"}", make([]byte, 100)),
			`tensor "fc1.weight": data_offsets [0, 100] but shape [8 6] of F32 needs 192 bytes`},
		{"overlapping tensors", rawFile("{"+entry("a", "F32", "[2]", "[0,8]")+","+entry("b", "F32", "[1]", "[4,8]")+"}", data8),
			`tensor "b": data_offsets [4, 8] overlap tensor "a" at [0, 8]`},
		{"same offsets twice", rawFile("{"+entry("a", "F32", "[2]", "[0,8]")+","+entry("b", "I32", "[2]", "[0,8]")+"}", data8), "overlap tensor"},
		{"empty tensor inside another", rawFile("{"+entry("a", "F32", "[2]", "[0,8]")+","+entry("b", "F32", "[0]", "[4,4]")+"}", data8), "overlap tensor"},
		{"gap", rawFile("{"+entry("a", "F32", "[1]", "[0,4]")+","+entry("b", "F32", "[1]", "[8,12]")+"}", make([]byte, 12)),
			`gap of 4 bytes in the data buffer at [4, 8] before tensor "b"`},
		{"gap at the start", rawFile("{"+entry("a", "F32", "[1]", "[4,8]")+"}", data8), "gap of 4 bytes"},
		{"trailing data bytes", rawFile("{"+okEntry+"}", make([]byte, 12)), "the tensors cover 8 bytes but the data buffer holds 12 (4 trailing bytes)"},
		{"no tensors but data", rawFile("{}", data8), "cover 0 bytes"},
		{"duplicate tensor", rawFile("{"+okEntry+","+okEntry+"}", data8), `header has duplicate key "a"`},
		{"duplicate via escapes", rawFile("{"+okEntry+","+entry(`\u0061`, "U8", "[0]", "[0,0]")+"}", data8), `duplicate key "a"`},
		{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, nil), `duplicate key "__metadata__"`},
		{"duplicate metadata key", rawFile(`{"__metadata__":{"k":"1","k":"2"}}`, nil), `__metadata__ has duplicate key "k"`},
		{"metadata value not a string", rawFile(`{"__metadata__":{"epoch":3}}`, nil), `__metadata__ value for "epoch" must be a string, found a number`},
		{"metadata value an object", rawFile(`{"__metadata__":{"k":{"a":"b"}}}`, nil), "must be a string, found an object"},
		{"metadata not an object", rawFile(`{"__metadata__":["a"]}`, nil), "__metadata__ must be an object of strings, found an array"},
		{"metadata true", rawFile(`{"__metadata__":true}`, nil), "found a boolean"},
	}
}

func TestReadMalformed(t *testing.T) {
	cases := malformedCases()
	if len(cases) < 12 {
		t.Fatalf("only %d cases", len(cases))
	}
	names := map[string]bool{}
	for _, tc := range cases {
		if names[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		names[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			f, err := readBytes(tc.file)
			if err == nil {
				t.Fatalf("Read accepted it: %q", f.Names())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "checkpoint: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error does not match ErrMalformed")
			}
		})
	}
}

// TestReadAccepts covers edge cases that are valid.
func TestReadAccepts(t *testing.T) {
	tests := []struct {
		name  string
		file  []byte
		names []string
	}{
		{"empty header object", rawFile("{}", nil), nil},
		{"padded header", rawFile("{}      ", nil), nil},
		{"whitespace everywhere", rawFile("{ \"a\" :\n{ \"dtype\" : \"U8\" ,\t\"shape\" : [ 1 ] , \"data_offsets\" : [ 0 , 1 ] } }\r\n", []byte{7}), []string{"a"}},
		{"null metadata", rawFile(`{"__metadata__":null}`, nil), nil},
		{"empty metadata", rawFile(`{"__metadata__":{}}`, nil), nil},
		{"empty entry name", rawFile("{"+entry("", "U8", "[1]", "[0,1]")+"}", []byte{1}), []string{""}},
		{"surrogate pair", rawFile(`{"\ud83d\ude00":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, nil), []string{"\U0001F600"}},
		{"escapes", rawFile(`{"\"\\\/\b\f\n\r\t\u00e9":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, nil), []string{"\"\\/\b\f\n\r\t\u00e9"}},
		{"zero-size tensors anywhere", rawFile("{"+entry("a", "U8", "[0]", "[0,0]")+","+entry("b", "U8", "[1]", "[0,1]")+","+
			entry("c", "U8", "[3,0]", "[1,1]")+"}", []byte{9}), []string{"a", "b", "c"}},
		{"zero dim before a huge one", rawFile("{"+entry("a", "U8", "[0,9223372036854775807,2]", "[0,0]")+"}", nil), []string{"a"}},
		{"offsets out of name order", rawFile("{"+entry("a", "U8", "[1]", "[1,2]")+","+entry("b", "U8", "[1]", "[0,1]")+"}", []byte{1, 2}), []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := readBytes(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Names(); len(got) != len(tc.names) || (len(got) > 0 && strings.Join(got, "|") != strings.Join(tc.names, "|")) {
				t.Fatalf("names %q, want %q", got, tc.names)
			}
			g, err := readBytes(mustMarshal(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if d := diffFiles(f, g); d != "" {
				t.Fatal(d)
			}
		})
	}
}

// allocBound is the most Read may allocate for an input of n bytes: the header and data
// buffers plus linear parsing overhead, never anything a header merely claims.
func allocBound(n int) uint64 { return 32*uint64(n) + 1<<20 }

// allocated returns the bytes allocated while running fn, from runtime/metrics, which
// is cheap enough for the fuzzer (unlike ReadMemStats, it does not stop the world) and
// counts small allocations a span at a time, well within allocBound's slack.
func allocated(fn func()) uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	fn()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

// TestReadAllocation checks that headers claiming large sizes do not make Read allocate
// them, and that adversarially dense headers cost memory linear in their size.
func TestReadAllocation(t *testing.T) {
	many := func(item string, n int) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	tests := []struct {
		name string
		file []byte
	}{
		{"claims a 99 MB header", withLength(99_000_000, []byte("{}"))},
		{"claims 2^62 bytes of data", rawFile("{"+entry("a", "U8", "[4611686018427387904]", "[0,4611686018427387904]")+"}", nil)},
		{"claims a huge shape", rawFile("{"+entry("a", "F64", "[1000000,1000000]", "[0,8000000000000]")+"}", make([]byte, 64))},
		{"a million dims", rawFile("{"+entry("a", "U8", "["+many("1", 1_000_000)+"]", "[0,1]")+"}", []byte{1})},
		{"50000 empty tensors", rawFile("{"+func() string {
			items := make([]string, 50_000)
			for i := range items {
				items[i] = entry(fmt.Sprintf("t%d", i), "U8", "[0]", "[0,0]")
			}
			return strings.Join(items, ",")
		}()+"}", nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := allocated(func() { _, _ = readBytes(tc.file) })
			if n > allocBound(len(tc.file)) {
				t.Fatalf("Read of %d bytes allocated %d bytes (bound %d)", len(tc.file), n, allocBound(len(tc.file)))
			}
			t.Logf("%d-byte input: %d bytes allocated", len(tc.file), n)
		})
	}
	// The many-tensor case must also parse correctly when valid.
	f, err := readBytes(bytes.Clone(rawFile("{"+entry("a", "U8", "[2]", "[0,2]")+"}", []byte{1, 2})))
	if err != nil || len(f.Tensors) != 1 {
		t.Fatal(err)
	}
}
