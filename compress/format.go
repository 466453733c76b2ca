package compress

import "bytes"

// Magic opens every compressed file. A safetensors file cannot start with it:
// its first 8 bytes are a header length, and these would claim 1.5 GB.
var Magic = []byte("SHKZ")

// Version is the container version this package writes and reads.
const Version = 1

// Section encodings.
const (
	encRaw   = 0 // the tensor's bytes as they are
	encFloat = 1 // F32: structure and values (floats.go)
	encInt   = 2 // I8, I16, I32, packed I32: structure and bit-packed values (ints.go)
)

// IsCompressed reports whether a file's first bytes are this format's.
func IsCompressed(prefix []byte) bool { return bytes.HasPrefix(prefix, Magic) }
