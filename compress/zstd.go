package compress

import (
	"sync"

	"github.com/klauspost/compress/zstd"
)

// One encoder and one decoder serve every call: EncodeAll and DecodeAll are
// safe for concurrent use, and building them allocates large tables.
var (
	zstdOnce sync.Once
	zenc     *zstd.Encoder
	zdec     *zstd.Decoder
	zerr     error
)

func codecs() (*zstd.Encoder, *zstd.Decoder, error) {
	zstdOnce.Do(func() {
		// One frame per block with its content size and no checksum (the file has
		// one for the whole body); the best level. Output depends only on the
		// input (and this library's version).
		zenc, zerr = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedBestCompression),
			zstd.WithEncoderConcurrency(1),
			zstd.WithSingleSegment(true),
			zstd.WithEncoderCRC(false))
		if zerr != nil {
			return
		}
		// DecodeAll writes no more than the capacity it is given (the length the
		// block declares, itself checked against the caller's limit).
		zdec, zerr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderMaxMemory(uint64(DefaultLimits.MaxBytes)),
			zstd.WithDecoderMaxWindow(uint64(DefaultLimits.MaxBytes)))
	})
	return zenc, zdec, zerr
}

// codedSize is the size of b once zstd-coded as the file is.
func codedSize(b []byte) int {
	enc, _, err := codecs()
	if err != nil {
		return len(b)
	}
	return len(enc.EncodeAll(b, nil))
}
